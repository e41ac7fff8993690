// cpu_variant.mjs: prints the ggml CPU variant node-llama-cpp loads on this machine ("haswell",
// "zen4", "sapphirerapids", ...), honouring MLXR_GGML_CPU_VARIANT (nlc.mjs), or "none" when it
// cannot load that one (the CPU lacks the variant's instructions). scripts/test.sh asks it which
// pinned variants this machine can run before it runs the suite on them. Exit status 0 either way.
import {getCpuLlama, loadedGgmlCpuVariant} from "./nlc.mjs";

let variant = "none";
try {
  const {llama} = await getCpuLlama();
  variant = loadedGgmlCpuVariant() ?? "none";
  await llama.dispose();
} catch {
  variant = "none";
}
process.stdout.write(variant + "\n");
