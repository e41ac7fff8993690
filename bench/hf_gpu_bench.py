#!/usr/bin/env python3
"""hf_gpu_bench.py: the Hugging Face transformers side of bench/gpu.sh, the GPU's copy bandwidth
(the roofline), and the benchmark shapes in one place.

    python3 bench/hf_gpu_bench.py --shape llama8b [--pp 512] [--tg 128] [-r 3]
                                  [--concurrency 1,8,32,64,128] [--prompt 128] [--gen 128]
                                  [--compile] [--attn sdpa] [--device cuda] [--out FILE.json]
    python3 bench/hf_gpu_bench.py --membw [--membw-mib 2048] [-r 20] [--out FILE.json]
    python3 bench/hf_gpu_bench.py --shape-args llama8b     # scripts/make_random_model.py options
    python3 bench/hf_gpu_bench.py --shape-bytes llama8b    # bytes of its weights in f16/bf16

Prints one JSON object on stdout (progress on stderr); with --out the same object is also
rewritten there after every measurement, so a run cut short by a time limit leaves what it had.

Shapes (SHAPES below; gpu.sh builds its GGUF files from the same table through --shape-args):
  llama1b  Llama-3.2-1B: hidden 2048, 16 layers, 32 heads / 8 KV heads, ffn 8192, vocab 128256,
           tied embeddings
  llama8b  Llama-3.1-8B: hidden 4096, 32 layers, 32 heads / 8 KV heads, ffn 14336, vocab 128256
  tiny     hidden 256, 2 layers (smoke tests of the scripts, on any machine)
all with rope theta 500000 and llama3 rope scaling (factor 8, low 1, high 4, original context 8192,
as make_random_model.py writes it; the real 3.2-1B uses factor 32, which changes no timing).

What the transformers run measures (bf16, the model made by AutoModelForCausalLM.from_config on the
device: random init, std 0.02 from initializer_range, no checkpoint files):
  pp    one forward of a --pp token prompt (logits of the last position only, like mlxr bench),
        median of -r runs after two warm-ups;
  tg    greedy generate() from a 1-token prompt, --tg + 1 new tokens with a static KV cache
        (cache_implementation="static"); tok/s = tg / (time from the first generated token to the
        last), i.e. --tg one-token decode steps; median of -r runs after one warm-up;
  levels  for each B of --concurrency: B random prompts of --prompt tokens, one batched generate()
        of --gen new tokens each (static cache, greedy, EOS suppressed by min_new_tokens); the
        prefill is timed apart: decode tok/s = B * (gen - 1) / (time from the first generated token
        to the last), total tok/s = B * gen / whole call. One untimed warm-up with the same shapes.
Token times come from a StoppingCriteria that never stops and records a timestamp after a device
synchronize each time generate() has produced a token (generate() syncs there anyway for its own
stop check). An out-of-memory error (or any error) at one measurement is reported in its place and
the run goes on. generate() compiles the decode step by itself when the cache is static and the
device is CUDA; this script turns that off (disable_compile) unless --compile: eager is the default
because compiling per batch size costs minutes. --compile lets it compile (mode reduce-overhead:
CUDA graphs; the warm-up of each shape includes the compile).

membw: device-to-device copy of a --membw-mib MiB buffer (torch copy_, i.e. cudaMemcpy D2D), timed
with CUDA events, -r times after 3 warm-ups; GB/s = (bytes read + bytes written) / time, median.
"""
import argparse
import contextlib
import gc
import json
import os
import statistics
import sys
import time

ROPE_LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}

SHAPES = {
    "llama1b": dict(hidden=2048, intermediate=8192, layers=16, heads=32, kv_heads=8, vocab=128256,
                    tie=True, theta=500000.0, max_pos=131072,
                    title="Llama-3.2-1B shape: hidden 2048, 16 layers, 32/8 heads, ffn 8192, vocab 128256, tied"),
    "llama8b": dict(hidden=4096, intermediate=14336, layers=32, heads=32, kv_heads=8, vocab=128256,
                    tie=False, theta=500000.0, max_pos=131072,
                    title="Llama-3.1-8B shape: hidden 4096, 32 layers, 32/8 heads, ffn 14336, vocab 128256, untied"),
    "tiny": dict(hidden=256, intermediate=512, layers=2, heads=4, kv_heads=2, vocab=4096,
                 tie=False, theta=500000.0, max_pos=131072,
                 title="tiny smoke-test shape: hidden 256, 2 layers, 4/2 heads, ffn 512, vocab 4096"),
}


def log(msg):
    print("hf_gpu_bench: " + msg, file=sys.stderr, flush=True)


def shape_args(name):
    """scripts/make_random_model.py options for a shape (f16 dtype and std are gpu.sh's)."""
    s = SHAPES[name]
    args = ["--arch", "llama", "--hidden", s["hidden"], "--intermediate", s["intermediate"],
            "--layers", s["layers"], "--heads", s["heads"], "--kv-heads", s["kv_heads"],
            "--vocab-size", s["vocab"], "--rope-theta", int(s["theta"]), "--rope-scaling", "llama3",
            "--rope-orig-ctx", ROPE_LLAMA3["original_max_position_embeddings"], "--max-pos", s["max_pos"]]
    if s["tie"]:
        args.append("--tie")
    return " ".join(str(a) for a in args)


def shape_params(name):
    """Number of weights (embeddings counted once when tied)."""
    s = SHAPES[name]
    H, F, L, V = s["hidden"], s["intermediate"], s["layers"], s["vocab"]
    hd = H // s["heads"]
    per_layer = H * s["heads"] * hd * 2 + 2 * H * s["kv_heads"] * hd + 3 * H * F + 2 * H
    return V * H * (1 if s["tie"] else 2) + L * per_layer + H


class Recorder:
    """The result object, rewritten to --out (atomically) after every measurement."""

    def __init__(self, path, result):
        self.path = path
        self.result = result

    def save(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.result, f, indent=1)
        os.replace(tmp, self.path)


# ----------------------------------------------------------------------------------------------
# Copy bandwidth

def membw(args, rec):
    import torch
    if not torch.cuda.is_available():
        raise SystemExit("hf_gpu_bench: --membw needs torch with CUDA")
    props = torch.cuda.get_device_properties(0)
    n = args.membw_mib << 20
    src = torch.empty(n, dtype=torch.uint8, device="cuda")
    src.fill_(1)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(args.reps)]
    for start, end in events:
        start.record()
        dst.copy_(src)
        end.record()
    torch.cuda.synchronize()
    ms = [start.elapsed_time(end) for start, end in events]
    gbs = sorted(2 * n / (t / 1e3) / 1e9 for t in ms)
    rec.result.update({
        "device": props.name, "memory_gib": round(props.total_memory / 2**30, 2),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "buffer_mib": args.membw_mib, "reps": args.reps,
        "copy_gb_s": statistics.median(gbs), "min_gb_s": gbs[0], "max_gb_s": gbs[-1],
        "method": "torch copy_ device to device, CUDA events, (read + write bytes) / time, median"})
    rec.save()
    log("%s: device-to-device copy %.0f GB/s (median of %d, %d MiB; range %.0f-%.0f)" %
        (props.name, rec.result["copy_gb_s"], args.reps, args.membw_mib, gbs[0], gbs[-1]))


# ----------------------------------------------------------------------------------------------
# transformers

def llama_config(name):
    import inspect
    from transformers import LlamaConfig
    s = SHAPES[name]
    kw = dict(vocab_size=s["vocab"], hidden_size=s["hidden"], intermediate_size=s["intermediate"],
              num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
              num_key_value_heads=s["kv_heads"], max_position_embeddings=s["max_pos"],
              rms_norm_eps=1e-5, tie_word_embeddings=s["tie"], hidden_act="silu",
              initializer_range=0.02, attention_bias=False, mlp_bias=False,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if "rope_parameters" in inspect.signature(LlamaConfig.__init__).parameters:  # transformers 5
        kw["rope_parameters"] = dict(ROPE_LLAMA3, rope_theta=s["theta"])
    else:  # transformers 4
        kw["rope_theta"] = s["theta"]
        kw["rope_scaling"] = dict(ROPE_LLAMA3)
    return LlamaConfig(**kw)


def build_model(args, torch):
    from transformers import AutoModelForCausalLM
    cfg = llama_config(args.shape)
    torch.manual_seed(0)
    # parameters are made (and randomly initialized) on the device; torch < 2.0 has no device context
    on_device = torch.device(args.device) if hasattr(torch.device, "__enter__") else contextlib.nullcontext()
    with on_device:
        try:
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=args.attn)
        except TypeError:  # older transformers spell it torch_dtype
            model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16, attn_implementation=args.attn)
    return model.to(device=args.device, dtype=torch.bfloat16).eval()


def is_oom(torch, e):
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(e, oom) or "out of memory" in str(e).lower()


def hf_bench(args, rec):
    import torch
    import transformers
    from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("hf_gpu_bench: torch has no CUDA device here (--device cpu runs on the CPU)")
    if args.compile:
        import torch._dynamo
        for knob in ("recompile_limit", "cache_size_limit"):  # one graph per batch size and cache length
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 64)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def free():
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    class TokenClock(StoppingCriteria):
        """Never stops generation; stamps[i] is when token i of the batch's generation existed."""

        def __init__(self):
            self.stamps = []

        def __call__(self, input_ids, scores, **kwargs):
            sync()
            self.stamps.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    r = rec.result
    r.update({"engine": "transformers", "transformers": transformers.__version__, "torch": torch.__version__,
              "shape": args.shape, "title": SHAPES[args.shape]["title"], "dtype": "bf16", "attn": args.attn,
              "compile": bool(args.compile), "cache": "static", "device": args.device,
              "device_name": torch.cuda.get_device_name(0) if cuda else "cpu",
              "pp": None, "tg": None, "levels": [], "errors": []})
    t0 = time.perf_counter()
    model = build_model(args, torch)
    sync()
    n_params = sum(p.numel() for p in model.parameters())
    r.update({"params": n_params, "weight_bytes": 2 * n_params, "load_s": round(time.perf_counter() - t0, 2)})
    rec.save()
    log("%s: %s parameters, bf16, made on %s in %.1f s (transformers %s, torch %s, attn %s, %s)" %
        (args.shape, format(n_params, ","), args.device, r["load_s"], transformers.__version__, torch.__version__,
         args.attn, "torch.compile" if args.compile else "eager"))
    vocab = model.config.vocab_size
    gen = torch.Generator(device=args.device)
    gen.manual_seed(1234)

    def tokens(b, n):
        return torch.randint(3, vocab, (b, n), generator=gen, device=args.device)

    def drop_cache():
        try:  # generate() keeps its static cache on the model for the next call of the same shape
            del model._cache
        except AttributeError:
            pass

    def guarded(what, fn):
        """fn() or None: an error (out of memory above all) is logged and recorded, the device
        memory is freed, and the run goes on."""
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - a failed measurement is a result, not the end
            text = str(e).strip().splitlines()
            err = "out of memory" if is_oom(torch, e) else "%s: %s" % (type(e).__name__, text[0][:300] if text else "")
        drop_cache()
        free()
        try:
            sync()
        except Exception:  # noqa: BLE001 - after a failed kernel the context may be gone
            err += " (and the device is unusable after it)"
        r["errors"].append({"what": what, "error": err})
        rec.save()
        log("%s: %s" % (what, err))
        return None

    def gen_config(n_new):
        return GenerationConfig(max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                                cache_implementation="static", disable_compile=not args.compile,
                                bos_token_id=1, eos_token_id=2, pad_token_id=0)

    def generate(ids, n_new):
        """One timed generate(); returns (token stamps, t_start, t_end, new tokens)."""
        clock = TokenClock()
        mask = torch.ones_like(ids)
        sync()
        t_start = time.perf_counter()
        with torch.no_grad():  # not inference_mode: the static cache outlives the call (warm-up, then timed)
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_config(n_new),
                                 stopping_criteria=StoppingCriteriaList([clock]))
        sync()
        t_end = time.perf_counter()
        n_out = out.shape[1] - ids.shape[1]
        if n_out != n_new or len(clock.stamps) != n_new:
            raise RuntimeError("generate made %d tokens (%d stamps), %d asked" % (n_out, len(clock.stamps), n_new))
        return clock.stamps, t_start, t_end, n_out

    # pp: one forward of the prompt
    def run_pp():
        ids = tokens(1, args.pp)
        kw = {"logits_to_keep": 1}
        with torch.no_grad():
            try:
                model(input_ids=ids, **kw)
            except TypeError:  # no logits_to_keep: the full logits then
                kw = {}
            times = []
            for i in range(2 + args.reps):
                sync()
                t = time.perf_counter()
                model(input_ids=ids, **kw)
                sync()
                if i >= 2:
                    times.append(time.perf_counter() - t)
        med = statistics.median(times)
        return {"n": args.pp, "tok_s": args.pp / med, "runs_tok_s": [args.pp / t for t in times],
                "last_logits_only": bool(kw)}

    t = time.perf_counter()
    r["pp"] = guarded("pp%d" % args.pp, run_pp)
    rec.save()
    if r["pp"]:
        log("pp%d: %.1f tok/s (%.1f s)" % (args.pp, r["pp"]["tok_s"], time.perf_counter() - t))

    # tg: one sequence, one token at a time
    def run_tg():
        ids = tokens(1, 1)
        rates = []
        for i in range(1 + args.reps):
            stamps, _, _, _ = generate(ids, args.tg + 1)
            if i:
                rates.append(args.tg / (stamps[-1] - stamps[0]))
        drop_cache()
        return {"n": args.tg, "tok_s": statistics.median(rates), "runs_tok_s": rates}

    t = time.perf_counter()
    r["tg"] = guarded("tg%d" % args.tg, run_tg)
    rec.save()
    if r["tg"]:
        log("tg%d: %.2f tok/s (%.1f s)" % (args.tg, r["tg"]["tok_s"], time.perf_counter() - t))

    # levels: B sequences at once
    for b in args.levels:
        def run_level(b=b):
            ids = tokens(b, args.prompt)
            generate(ids, args.gen)  # warm-up: the static cache, cuBLAS plans (and the compile)
            stamps, t_start, t_end, n_out = generate(ids, args.gen)
            decode_s = stamps[-1] - stamps[0]
            drop_cache()
            return {"sequences": b, "decode_tok_s": b * (n_out - 1) / decode_s,
                    "total_tok_s": b * n_out / (t_end - t_start), "prefill_s": stamps[0] - t_start,
                    "decode_s": decode_s, "seconds": t_end - t_start}

        t = time.perf_counter()
        lv = guarded("%d sequences" % b, run_level)
        r["levels"].append(lv if lv else {"sequences": b, "error": r["errors"][-1]["error"]})
        rec.save()
        if lv:
            log("%4d sequences: decode %.1f tok/s, total %.1f tok/s, prefill %.3f s (%.1f s)" %
                (b, lv["decode_tok_s"], lv["total_tok_s"], lv["prefill_s"], time.perf_counter() - t))
    r["seconds"] = round(time.perf_counter() - t0, 1)
    rec.save()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="transformers GPU benchmark, copy bandwidth, benchmark shapes")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--shape", choices=sorted(SHAPES), help="benchmark transformers on this shape")
    mode.add_argument("--membw", action="store_true", help="measure the device-to-device copy bandwidth")
    mode.add_argument("--shape-args", choices=sorted(SHAPES), help="print make_random_model.py options")
    mode.add_argument("--shape-bytes", choices=sorted(SHAPES), help="print the shape's f16 weight bytes")
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("-r", "--reps", type=int, default=0, help="repetitions (default 3; 20 for --membw)")
    ap.add_argument("--concurrency", default="1,8,32,64,128", help="batch sizes, comma-separated ('' for none)")
    ap.add_argument("--prompt", type=int, default=128, help="prompt tokens per sequence at each level")
    ap.add_argument("--gen", type=int, default=128, help="generated tokens per sequence at each level")
    ap.add_argument("--compile", action="store_true", help="let generate() torch.compile the decode step")
    ap.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa, eager, ...)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--membw-mib", type=int, default=2048)
    ap.add_argument("--out", help="also write the JSON here, after every measurement")
    args = ap.parse_args(argv)
    args.levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    if not args.reps:
        args.reps = 20 if args.membw else 3
    if args.gen < 2 or args.tg < 1 or args.pp < 1 or args.reps < 1 or any(b < 1 for b in args.levels):
        ap.error("--gen needs at least 2, --tg, --pp, -r and batch sizes at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.shape_args:
        print(shape_args(args.shape_args))
        return
    if args.shape_bytes:
        print(2 * shape_params(args.shape_bytes))
        return
    rec = Recorder(args.out, {})
    if args.membw:
        membw(args, rec)
    else:
        hf_bench(args, rec)
    print(json.dumps(rec.result))


if __name__ == "__main__":
    main()
