# aarch64-linux-gnu.cmake: CMake toolchain file for cross-building MLXR for arm64 Linux on an
# x86-64 host with Debian's gcc-aarch64-linux-gnu, and running the results under qemu-user
# (qemu-user-static): ctest (and CMake's try_run) prefix each test command with the emulator, and
# -L points qemu at the arm64 glibc that the cross toolchain ships in /usr/aarch64-linux-gnu.
# Used with -DMLXR_KERNELS_ONLY=ON (no arm64 pcre2/cjson/... exist on the host); see
# tests/golden/test_arm64_qemu.sh.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CROSSCOMPILING_EMULATOR "qemu-aarch64-static;-L;/usr/aarch64-linux-gnu")
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
