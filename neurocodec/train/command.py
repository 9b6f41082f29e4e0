"""`neurocodec train FAMILY`: one command per registered family, made from its `TrainSpec`.

Every family takes the same options (data, budget, checkpoint folder, resume, export, batch,
crop, learning rate, device) with its own defaults, plus the options its spec declares. A
family installed by another package (entry point `neurocodec.families`) gets its command too.
"""

from __future__ import annotations

import os

import click


def _device_default() -> str:
    return "cuda" if os.environ.get("CUDA_VISIBLE_DEVICES") else "cpu"


def make_command(name: str) -> click.Command:
    from .. import registry

    spec_cls = registry.train_spec(name)
    d = spec_cls.defaults

    def run(data, minutes, out_dir, resume, export_to, export_name, batch, crop, lr, device, ema, **options):
        from ..errors import NeurocodecError
        from .loop import export, train

        spec = spec_cls(**options)
        try:
            info = train(spec, data, out_dir, minutes, resume=resume, batch=batch, crop=crop, lr=lr, device=device,
                         ema=ema)
            click.echo(f"trained {info['steps']} steps in all, {info['train_minutes']} minutes in all")
            if export_to and int(os.environ.get("RANK", "0")) == 0:
                export(spec, out_dir, export_to, export_name)
                click.echo(f"wrote codec folder {export_to}")
        except NeurocodecError as e:  # a wrong --resume or --data: one line, exit status 1
            raise click.ClickException(str(e)) from None

    params = [
        click.Option(["--data"], default=spec_cls.default_data, show_default=True,
                     help="training data: folder(s) or files, comma-separated" + (" (PNG, lossless WebP, JPEG)"
                                                                                   if spec_cls.data_kind == "images" else "")),
        click.Option(["--minutes"], type=float, required=True, help="wall-clock training budget"),
        click.Option(["--out", "out_dir"], required=True, type=click.Path(), help="checkpoint folder"),
        click.Option(["--resume"], help="checkpoint folder, codec folder or installed codec name to start from"),
        click.Option(["--export", "export_to"], type=click.Path(), help="also write a codec folder here"),
        click.Option(["--name", "export_name"], default=name, show_default=True, help="codec name for --export"),
        click.Option(["--batch"], type=int, show_default=f"{d['batch']}, or the resumed run's"),
        click.Option(["--crop"], type=int, show_default=f"{d.get('crop')}, or the resumed run's", hidden="crop" not in d),
        click.Option(["--lr"], type=float, default=d["lr"], show_default=True),
        click.Option(["--device"], default=_device_default(), show_default=True, help="cpu, cuda or cuda:N"),
        click.Option(["--ema"], type=click.FloatRange(0, 1, max_open=True), default=0.999, show_default=True,
                     help="decay per step of the weights' moving average, which checkpoints and exports keep (0: none)"),
    ]
    for opt, (default, help_text, *extra) in spec_cls.options.items():  # (default, help[, choices or type])
        if extra:
            kind = extra[0] if isinstance(extra[0], type) else click.Choice(extra[0])
        else:
            kind = type(default) if default is not None else str
        params.append(click.Option([f"--{opt.replace('_', '-')}", opt], type=kind, default=default, show_default=True,
                                   help=help_text))
    import sys

    doc = (sys.modules[spec_cls.__module__].__doc__ or "").strip()
    return click.Command(name, params=params, callback=run, help=doc or f"Train the {name} family's model.",
                         short_help=doc.splitlines()[0] if doc else None)


class TrainGroup(click.Group):
    """Lists the registered families without importing them; builds a command when asked."""

    def list_commands(self, ctx):
        from .. import registry

        return sorted(registry.family_sources())

    def get_command(self, ctx, name):
        from .. import registry
        from ..errors import NeurocodecError

        if name not in registry.family_sources():
            return None
        try:
            return make_command(name)
        except NeurocodecError as e:
            message = str(e)

            def fail():
                raise click.ClickException(message)

            return click.Command(name, callback=fail, help=message, short_help=message)


train = TrainGroup("train", help="Train a family's model: `neurocodec train FAMILY --help` for its options. "
                   "Under torchrun it trains with DistributedDataParallel.")
