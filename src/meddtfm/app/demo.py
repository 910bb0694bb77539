"""The Gradio page of ``meddtfm serve``: a mask (uploaded or drawn, one layer per class), an optional reference,
a caption, NFE / CFG / seed, Generate; the sample, its mask overlay, the difference to the reference, a PNG.

Requests are queued (one generation at a time, the others wait their turn). A bad input is answered in the
status box (and a warning toast); the server keeps running. Element ids (``#mask-file``, ``#generate``,
``#sample``, ``#status``, ...) are what the browser test drives.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
from torch import Tensor

from ..pipeline import InputError, MedDTFMPipeline
from ..viz import CLASS_COLOURS
from .requests import MAX_UPLOAD_MB, NO_REFERENCE, UPLOADED, Request, reference_preview, run

CANVAS = 256  # px of the drawing canvas (drawn masks are resized to the model's R, nearest)
CSS = ("#sample img, #overlay img, #difference img, #reference-preview img "
       "{image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain;}")
FONTS = {"font": ["ui-sans-serif", "system-ui", "sans-serif"], "font_mono": ["ui-monospace", "monospace"]}


def _describe(pipe: MedDTFMPipeline) -> str:
    return (f"## Med-DT-FM demo\n`{pipe.weights}`: a **{pipe.kind}** model of {', '.join(pipe.channel_names)} images "
            f"at {pipe.resolution} x {pipe.resolution} px, mask classes **{', '.join(pipe.class_names)}**"
            f"{', with captions' if pipe.uses_captions else ''}. Upload a mask (a PNG / TIFF label map: 0 background, "
            f"i the i-th class, or `.npy`), or draw one: one layer per class.")


def build_demo(pipe: MedDTFMPipeline, healthy: dict[str, Tensor] | None = None,
               folder: str | Path | None = None) -> gr.Blocks:
    """The page for ``pipe``; ``healthy``: reference slices to pick (``references.healthy_slices``); PNGs go to
    ``folder`` (default a temporary one)."""
    healthy = healthy or {}
    out = Path(folder or tempfile.mkdtemp(prefix="meddtfm-serve-"))
    colours = [f"rgb({r:.0f}, {g:.0f}, {b:.0f})" for r, g, b in CLASS_COLOURS[:len(pipe.class_names)]]
    blank = np.zeros((CANVAS, CANVAS, 3), np.uint8)
    flow = pipe.kind == "meddtfm"
    with gr.Blocks(title="meddtfm demo") as demo:
        gr.Markdown(_describe(pipe))
        with gr.Row():
            with gr.Column():
                mask_file = gr.File(label="Mask file (label map PNG / TIFF, or .npy)", elem_id="mask-file",
                                    file_types=[".png", ".tif", ".tiff", ".npy", ".jpg"], type="filepath", height=120)
                drawing = gr.ImageEditor(
                    value={"background": blank, "layers": [], "composite": None}, label="...or draw the lesion",
                    elem_id="drawing", sources=(), type="numpy", canvas_size=(CANVAS, CANVAS), fixed_canvas=True,
                    layers=gr.LayerOptions(allow_additional_layers=False, layers=list(pipe.class_names)),
                    brush=gr.Brush(colors=colours, color_mode="fixed"), transforms=())
                choices = [NO_REFERENCE] + ([UPLOADED, *healthy] if pipe.supports_reference else [])
                with gr.Row(visible=len(choices) > 1):
                    with gr.Column(scale=2):
                        reference = gr.Dropdown(choices, value=NO_REFERENCE, label="Reference (a healthy slice)",
                                                elem_id="reference")
                        reference_file = gr.File(label="Upload a reference (8-bit image, or .npy C x H x W in "
                                                       "[-1, 1])", elem_id="reference-file", type="filepath",
                                                 height=120)
                    preview = gr.Image(label="Reference as the model sees it", elem_id="reference-preview",
                                       interactive=False, height=200, scale=1)
                caption = gr.Textbox(label="Caption", elem_id="caption", visible=pipe.uses_captions)
                with gr.Row(visible=flow):
                    nfe = gr.Slider(2, 64, value=8, step=2, label="NFE (Heun: 2 per step)", elem_id="nfe")
                    cfg = gr.Slider(1.0, 6.0, value=2.0, step=0.5, label="CFG scale", elem_id="cfg")
                with gr.Row():
                    seed = gr.Number(0, precision=0, label="Seed", elem_id="seed", visible=flow)
                    resize = gr.Checkbox(True, label="Resize an uploaded mask to the model's size", elem_id="resize")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                status = gr.Markdown("Upload or draw a mask, then press Generate.", elem_id="status")
                with gr.Row():
                    sample = gr.Image(label="Sample", elem_id="sample", format="png", height=300, interactive=False)
                    overlay = gr.Image(label="Mask overlay", elem_id="overlay", format="png", height=300,
                                       interactive=False)
                difference = gr.Image(label="|sample - reference| (reference mode)", elem_id="difference",
                                      format="png", height=300, interactive=False, visible=pipe.supports_reference)
                download = gr.File(label="PNG at the model's size", elem_id="download", interactive=False)

        def request(*values: object) -> Request:
            mask_value, drawn, ref, ref_file, text, n, scale, s, fit = values
            return Request(mask_value, drawn, ref, ref_file, text or "", int(n), float(scale), int(s or 0), bool(fit))

        inputs = [mask_file, drawing, reference, reference_file, caption, nfe, cfg, seed, resize]

        def generate(*values: object, progress: gr.Progress = gr.Progress()) -> tuple:
            try:
                result = run(pipe, request(*values), healthy, out, lambda f, text: progress(f, desc=text))
            except InputError as err:
                gr.Warning(str(err))
                return f"**Cannot generate:** {err}", None, None, None, None
            return result.status, result.sample, result.overlay, result.difference, str(result.png)

        button.click(generate, inputs, [status, sample, overlay, difference, download])

        def choose(*values: object) -> np.ndarray | None:
            return reference_preview(pipe, request(*values), healthy)

        def uploaded(path: str | None) -> str:
            return UPLOADED if path else NO_REFERENCE

        reference_file.upload(uploaded, reference_file, reference)
        reference.change(choose, inputs, preview)
    return demo


def launch(demo: gr.Blocks, host: str, port: int) -> None:
    """Serve ``demo`` on ``host:port`` until interrupted; one generation at a time, up to 16 waiting."""
    demo.queue(default_concurrency_limit=1, max_size=16)
    demo.launch(server_name=host, server_port=port, max_file_size=f"{MAX_UPLOAD_MB}mb", ssr_mode=False,
                show_error=True, css=CSS, theme=gr.themes.Default(**FONTS), quiet=False)
