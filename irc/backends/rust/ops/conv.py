"""Conv and ConvTranspose (1-D/2-D/3-D, groups, dilations, pads, auto_pad)."""

from __future__ import annotations

from .base import NUMS, OpCtx, Unsupported, op, slice_lit
from .matmul import ACTIVATIONS, act_expr, fused_f32

AUTO_PAD = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}


def window(c: OpCtx, kernel: list[int] | None = None) -> str:
    """A `&rt::Window { ... }` literal from the op's attributes."""
    auto_pad = c.s("auto_pad", "NOTSET", AUTO_PAD)
    parts = [
        f"kernel: {slice_lit(kernel or [])}",
        f"strides: {slice_lit(c.attr_list('strides'))}",
        f"dilations: {slice_lit(c.attr_list('dilations'))}",
        f"pads: {slice_lit(c.attr_list('pads'))}",
        f"auto_pad: {c.string(auto_pad)}",
    ]
    return "&rt::Window { " + ", ".join(parts) + " }"


def out_positions(c: OpCtx) -> int | None:
    """Output positions per image of a 1-D/2-D Conv with a static input shape, else None."""
    x, w = c.ins[0], c.const(1)
    if w is None or x.shape is None or len(x.shape) not in (3, 4) or w.ndim != len(x.shape):
        return None
    spatial = x.shape[2:]
    if not all(isinstance(d, int) and d > 0 for d in spatial):
        return None
    n = len(spatial)
    kernel = list(w.shape[2:])
    strides = c.attr_list("strides") or [1] * n
    dils = c.attr_list("dilations") or [1] * n
    pads = c.attr_list("pads") or [0] * (2 * n)
    auto_pad = c.s("auto_pad", "NOTSET", AUTO_PAD)
    total = 1
    for d in range(n):
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out = -(-spatial[d] // strides[d])
        else:
            span = (kernel[d] - 1) * dils[d] + 1
            padded = spatial[d] + (0 if auto_pad == "VALID" else pads[d] + pads[d + n])
            out = (padded - span) // strides[d] + 1
        total *= max(out, 0)
    return total


def blocked_conv(c: OpCtx, w, group: int) -> bool:
    """Whether `rt::conv_blocked` (the AVX-512 direct kernel) takes this layer: 2-D, one
    group, a kernel of 3x3 or larger with at least 64 input channels.

    Every image size: resnet18 batch 1, 1 thread, native loop, interleaved: im2col + GEMM
    45.1 ms, blocked for <= 256 output positions 42.0, <= 784 40.8, every 3x3 layer 39.4
    (batch 8: 5% and 9% less CPU time than the GEMM for <= 256 and every layer). Timed
    alone, hot in cache, the 56x56 layers ran 1.1-1.2x the GEMM's time; in the network the
    GEMM path's im2col and column traffic cost more than that. Few channels lose (mnist's
    32 -> 64 layer on 26x26: the network 1.03x at batch 1, 1.55x at batch 8).

    Kernels of 5x5 and more take it at any channel count too (resnet18's 7x7/s2 3 -> 64 stem
    at 224x224, alone, 1 thread: 2.36 ms blocked vs 2.61 ms im2col + packed GEMM), except
    the RGB stems `direct_conv` takes first (2.18 ms)."""
    if w.ndim == 4 and group == 1 and tuple(w.shape[2:]) == (1, 1) and w.shape[1] >= 256:
        return pointwise_blocked(c)
    return (w.ndim == 4 and group == 1 and w.shape[2] * w.shape[3] >= 9
            and (w.shape[1] >= 64 or w.shape[2] * w.shape[3] >= 25))


def pointwise_blocked(c: OpCtx) -> bool:
    """Pointwise layers (stride 1, no padding, >= 256 input channels) on 14x14 planes and
    smaller go to `rt::conv_blocked` (14x14 read in place), larger ones stay on the GEMM.

    mobilenet's layers alone, batch 1, 1 thread, CPU time: 256 -> 512 at 14x14 488 vs
    539 µs (packed GEMM), 512 -> 512 at 14x14 955 vs 1040-1200, 512 -> 1024 at 7x7 547-579
    vs 560-599, 1024 -> 1024 at 7x7 1177-1192 vs 1212-1280; at 28x28 the GEMM is ahead
    (256 -> 256: 937 vs 906)."""
    positions = out_positions(c)
    strides = list(c.attr_list("strides") or [1, 1])
    pads = list(c.attr_list("pads") or [0, 0, 0, 0])
    auto_pad = c.s("auto_pad", "NOTSET", AUTO_PAD)
    return (positions is not None and positions <= 196 and all(v == 1 for v in strides)
            and not any(pads) and auto_pad in ("NOTSET", "VALID"))


def direct_conv(c: OpCtx, w, group: int) -> bool:
    """Whether the layer is left to `rt::conv_act`'s direct kernel (`conv_direct`: one group,
    C * K <= 320 columns per channel) instead of the packed im2col GEMM: 3x3, stride 1,
    no dilation, at most 32 input channels (mnist's 32 -> 64 layer on 26x26).

    mnist_cnn, 1 thread, native loop, interleaved: packed rows GEMM 331 / 2508 µs at batch
    1 / 8, direct 266 / 1880 (the packed path's im2col + memmove cost more than the
    GEMM saves on 288-deep columns).

    Stems (2-4 input channels, C * K <= 320, any stride) too: alone, 1 thread, CPU time,
    batch 1 | 8, direct vs packed GEMM vs `conv_blocked`: mobilenet's 3x3/s2 3 -> 32 at 224
    250 vs 312 vs 299 µs | 2.57 vs 3.45 vs 3.53 ms; resnet18's 7x7/s2 3 -> 64 2.18 vs 2.63
    vs 2.36 ms | 19.0 vs 23.9 vs 22.1 ms."""
    strides = list(c.a("strides") or [1, 1])
    dilations = list(c.a("dilations") or [1, 1])
    if (w.ndim == 4 and group == 1 and 1 < w.shape[1] <= 4 and w.shape[1] * w.shape[2] * w.shape[3] <= 320
            and all(v == 1 for v in dilations)):
        return True
    return (w.ndim == 4 and group == 1 and tuple(w.shape[2:]) == (3, 3) and 1 < w.shape[1] <= 32
            and all(v == 1 for v in strides) and all(v == 1 for v in dilations))


def winograd_conv(c: OpCtx, w, group: int) -> int | None:
    """The output tile (4 or 2) of `rt::conv_winograd` (Winograd F(r x r, 3 x 3)) for this
    layer, or None: 2-D 3x3, stride 1, no dilation, one group, pads <= 1, f32, and wide enough to
    pay (>= 32 input channels on >= 196 output positions, measured per layer in bench/NOTES.md:
    with the AVX-512 transforms F(2x2) also beats the direct kernel on 32 -> 64 at 26x26; 7x7
    planes from 256 input channels on F(2x2): resnet18 b1 1 thread ~2 ms less, at 2 threads
    their single tile block splits its phases; 7 MB more weights per 512-channel layer)."""
    strides = list(c.a("strides") or [1, 1])
    dilations = list(c.a("dilations") or [1, 1])
    pads = list(c.attr_list("pads") or [0, 0, 0, 0])
    auto_pad = c.s("auto_pad", "NOTSET", AUTO_PAD)
    if not (w.ndim == 4 and group == 1 and tuple(w.shape[2:]) == (3, 3) and all(v == 1 for v in strides)
            and all(v == 1 for v in dilations) and all(0 <= v <= 1 for v in pads) and auto_pad != "VALID"
            and c.t(0) == "f32" and w.dtype == "float32"):
        return None
    x = c.ins[0]
    if x.shape is None or len(x.shape) != 4 or not all(isinstance(d, int) for d in x.shape[2:]):
        return None
    cin = w.shape[1]
    positions = out_positions(c)
    if cin >= 32 and positions is not None and (positions >= 196 or (cin >= 256 and positions >= 49)):
        # F(4x4) from 64 input channels unless its tiles overhang the plane so much that it
        # multiplies more than F(2x2) (36 products per 4x4 tile against 16 per 2x2 tile).
        # mnist_cnn's 32 -> 64 layer at 26x26 ran 4-8% slower on F(4x4) (the transforms
        # weigh more against short GEMMs; 49 tiles are 32 + 16 + 1 GEMM columns).
        h, wd = x.shape[2:]
        oh, ow = (h, wd) if auto_pad.startswith("SAME") else (h + pads[0] + pads[2] - 2, wd + pads[1] + pads[3] - 2)
        return 4 if cin >= 64 and positions >= 196 and 36 * -(-oh // 4) * -(-ow // 4) < 16 * -(-oh // 2) * -(-ow // 2) else 2
    return None


def packed_conv(c: OpCtx, act: str, residual: str | None = None) -> str | None:
    """`rt::conv_packed` with the weights packed at load, for every f32 1-D/2-D convolution
    with constant weights and more than one input channel per group; None when the plain
    kernels apply (depthwise and single-channel layers, dynamic weights, other types).
    With ``residual`` (an owned `ArrayD` expression), `rt::conv_packed_add`.

    Layers whose weights outweigh their activations (small images: fewer output positions
    than channels per 512-position chunk) get the transposed layout (`ConvWeights::new`,
    the GEMM's rows are the batch's positions, no padded tile columns); the others the
    weights as the GEMM's A (`ConvWeights::rows`: out = W · columns, already NCHW)."""
    w, group = c.const(1), int(c.a("group", 1))
    if (w is None or w.ndim not in (3, 4) or w.dtype != "float32" or c.t(0) != "f32"
            or (c.has(2) and c.t(2) != "f32") or w.shape[1] == 1 or w.shape[0] % group):
        return None
    wino = winograd_conv(c, w, group)
    if wino is not None:
        packed = c.b.prepared(c.ins[1], f"winograd{wino}", "rt::WinogradWeights",
                              f"rt::WinogradWeights::new({{}}, {wino})?")
        if packed is not None:
            bias = f"Some({c.x(2)})" if c.has(2) else "None"
            if residual is not None:
                return f"rt::conv_winograd_add({c.x(0)}, {packed}, {bias}, {window(c)}, {act}, {residual})"
            return f"rt::conv_winograd({c.x(0)}, {packed}, {bias}, {window(c)}, {act})"
    if residual is None and direct_conv(c, w, group):
        return None
    positions = out_positions(c)
    channels = w.shape[0] // group
    transposed = positions is not None and channels * -(-positions // 512) > positions
    bias = f"Some({c.x(2)})" if c.has(2) else "None"
    if blocked_conv(c, w, group):
        packed = c.b.prepared(c.ins[1], "blocked", "rt::BlockedWeights",
                              f"rt::BlockedWeights::new({{}}, {group}, {'true' if transposed else 'false'})?")
        if packed is not None:
            if residual is not None:
                return f"rt::conv_blocked_add({c.x(0)}, {packed}, {bias}, {window(c)}, {act}, {residual})"
            return f"rt::conv_blocked({c.x(0)}, {packed}, {bias}, {window(c)}, {act})"
    kind, ctor = ("packed", "new") if transposed else ("rows", "rows")
    packed = c.b.prepared(c.ins[1], kind, "rt::ConvWeights", f"rt::ConvWeights::{ctor}({{}}, {group})?")
    if packed is None:
        return None
    if residual is not None:
        return f"rt::conv_packed_add({c.x(0)}, {packed}, {bias}, {window(c)}, {act}, {residual})"
    return f"rt::conv_packed({c.x(0)}, {packed}, {bias}, {window(c)}, {act})"


def _pointwise_rows(p: OpCtx) -> bool:
    """Whether pointwise layer ``p`` (1x1, stride 1, no padding, one group, f32) goes to
    `rt::conv_packed` on `ConvWeights::rows` (see `packed_conv`)."""
    w = p.const(1)
    if (w is None or w.ndim != 4 or w.dtype != "float32" or tuple(w.shape[2:]) != (1, 1) or w.shape[1] == 1
            or int(p.a("group", 1)) != 1 or (p.has(2) and p.const(2) is None)):
        return False
    if (any(v != 1 for v in p.attr_list("strides")) or any(v != 1 for v in p.attr_list("dilations"))
            or any(p.attr_list("pads")) or p.s("auto_pad", "NOTSET", AUTO_PAD) not in ("NOTSET", "VALID")):
        return False
    positions = out_positions(p)
    if positions is None or blocked_conv(p, w, 1) or direct_conv(p, w, 1):
        return False
    return not w.shape[0] * -(-positions // 512) > positions


def _fusable_depthwise(c: OpCtx, act: str | None):
    """The pointwise op to fuse depthwise layer ``c`` into (`rt::depthwise_pointwise`), or None.

    The depthwise layer: 3x3 `[C, 1, 3, 3]` f32 weights, group C, stride 1 or 2 both ways,
    no dilation, begin pads <= 2, a static 4-D input, Relu / Clip / no activation; its output
    read only by a pointwise `Conv` / `irc.Conv<Relu|Clip>` on packed rows (not a graph output).
    Measured (mobilenet b1, 1 thread, native loop, interleaved rounds): ~2% of the model."""
    if act not in (None, "Relu", "Clip"):
        return None
    w, x, out = c.const(1), c.ins[0], c.outs[0]
    if (w is None or w.ndim != 4 or w.dtype != "float32" or tuple(w.shape[1:]) != (1, 3, 3)
            or int(c.a("group", 1)) != w.shape[0] or c.t(0) != "f32" or (c.has(2) and c.const(2) is None)):
        return None
    if x.shape is None or len(x.shape) != 4 or not all(isinstance(d, int) for d in x.shape[1:]) or x.shape[1] != w.shape[0]:
        return None
    strides = list(c.attr_list("strides") or [1, 1])
    pads = list(c.attr_list("pads") or [0, 0, 0, 0])
    if (len(strides) != 2 or strides[0] != strides[1] or strides[0] not in (1, 2)
            or any(v != 1 for v in c.attr_list("dilations")) or c.s("auto_pad", "NOTSET", AUTO_PAD) != "NOTSET"
            or len(pads) != 4 or pads[0] > 2 or pads[1] > 2):
        return None
    g = c.b.graph
    if out is None or g.is_output(out) or any(u[1] < 0 for u in g.uses(out)):
        return None
    readers = g.consumers(out)
    if len(readers) != 1:
        return None
    p = readers[0]
    key = p.op_type if p.domain in ("", "ai.onnx") else f"{p.domain}.{p.op_type}"
    if key not in ("Conv", "irc.ConvRelu", "irc.ConvClip") or p.inputs[0] is not out or any(v is out for v in p.inputs[1:]):
        return None
    pc = OpCtx(c.b, p, c.opset)
    return p if _pointwise_rows(pc) else None


def _defer_depthwise(c: OpCtx, act: str | None) -> bool:
    """Defers depthwise layer ``c`` into its pointwise reader when `_fusable_depthwise`: no
    statement here, its input kept alive until the reader (which drops it)."""
    p = _fusable_depthwise(c, act)
    if p is None:
        return False
    x = c.ins[0]
    bias = f"Some({c.x(2)})" if c.has(2) else "None"
    parts = {"x": c.x(0), "w": c.x(1), "b": bias, "win": window(c), "act": act_expr(c, act) if act else "rt::Act::None",
             "drop": None}
    if c.b.last_use.get(x) is c.op and x in c.b.names:
        c.b.last_use[x] = p
        parts["drop"] = c.b.names[x]
    c.b.deferred[c.outs[0]] = parts
    return True


def _fused_pointwise(c: OpCtx, act: str) -> str | None:
    """`rt::depthwise_pointwise(...)` when input 0 of pointwise layer ``c`` was deferred."""
    d = c.b.deferred.get(c.ins[0])
    if d is None:
        return None
    packed = c.b.prepared(c.ins[1], "rows", "rt::ConvWeights", "rt::ConvWeights::rows({}, 1)?")
    if packed is None:
        raise Unsupported("fused depthwise -> pointwise: pointwise weights not constant")
    bias = f"Some({c.x(2)})" if c.has(2) else "None"
    call = f"rt::depthwise_pointwise({d['x']}, {d['w']}, {d['b']}, {d['win']}, {d['act']}, {packed}, {bias}, {act})"
    if d["drop"] is None:
        return call
    return f"{{ let r = {call}; drop({d['drop']}); r }}"


@op("Conv")
def conv(c: OpCtx) -> str | None:
    c.types(0, NUMS)
    bias = f"Some({c.x(2)})" if c.has(2) else "None"
    fused = _fused_pointwise(c, "rt::Act::None")
    if fused is not None:
        return fused
    if _defer_depthwise(c, None):
        return None
    packed = packed_conv(c, "rt::Act::None")
    if packed is not None:
        return packed
    if c.t(0) == "f32" and c.t(1) == "f32" and (not c.has(2) or c.t(2) == "f32"):
        # The f32 kernels (bias in the GEMM epilogue, SIMD depthwise) with no activation.
        return f"rt::conv_act({c.x(0)}, {c.x(1)}, {bias}, {window(c)}, {int(c.a('group', 1))}, rt::Act::None)"
    return f"rt::conv({c.x(0)}, {c.x(1)}, {bias}, {window(c)}, {int(c.a('group', 1))})"


def _conv_act(act: str):
    def handler(c: OpCtx) -> str | None:
        fused_f32(c)
        fused = _fused_pointwise(c, act_expr(c, act))
        if fused is not None:
            return fused
        if _defer_depthwise(c, act):
            return None
        packed = packed_conv(c, act_expr(c, act))
        if packed is not None:
            return packed
        return (f"rt::conv_act({c.x(0)}, {c.x(1)}, Some({c.x(2)}), {window(c)}, {int(c.a('group', 1))}, "
                f"{act_expr(c, act)})")
    return handler


for _act in ACTIVATIONS:
    op(f"irc.Conv{_act}")(_conv_act(_act))


def _conv_add(act: str | None):
    """irc.ConvAdd<Act>(X, W, B, R): act(Conv(X, W, B) + R); the residual R becomes the GEMM's
    C (beta = 1), moved in when it dies here (its buffer is the output), copied otherwise."""
    def handler(c: OpCtx) -> str:
        fused_f32(c)
        a = act_expr(c, act) if act else "rt::Act::None"
        residual = c.take(3) or c.x(3)
        packed = packed_conv(c, a, residual)
        if packed is not None:
            return packed
        return (f"rt::conv_act_add({c.x(0)}, {c.x(1)}, Some({c.x(2)}), {window(c)}, {int(c.a('group', 1))}, "
                f"{a}, {residual})")
    return handler


op("irc.ConvAdd")(_conv_add(None))
for _act in ACTIVATIONS:
    op(f"irc.ConvAdd{_act}")(_conv_add(_act))


@op("ConvTranspose")
def conv_transpose(c: OpCtx) -> str:
    c.types(0, NUMS)
    bias = f"Some({c.x(2)})" if c.has(2) else "None"
    opad = slice_lit(c.attr_list("output_padding"))
    oshape = slice_lit(c.attr_list("output_shape"))
    return (f"rt::conv_transpose({c.x(0)}, {c.x(1)}, {bias}, {window(c)}, {int(c.a('group', 1))}, "
            f"{opad}, {oshape})")


@op("Col2Im")
def col2im(c: OpCtx) -> str:
    c.types(0, NUMS)
    return (f"rt::col2im({c.x(0)}, {c.ints_expr(1)}, {c.ints_expr(2)}, {slice_lit(c.attr_list('strides'))}, "
            f"{slice_lit(c.attr_list('dilations'))}, {slice_lit(c.attr_list('pads'))})")
