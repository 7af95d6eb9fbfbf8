"""The ``fds`` command: ``fds infer|train|eval|view|demo`` from any folder (also ``python -m fds``).

``infer``, ``train`` and ``eval`` run the same Hydra apps as ``infer.py``, ``train.py`` and ``eval/run.py``;
extra ``key=value`` arguments are Hydra overrides. Configs and the shipped checkpoint come from the installed
package (:mod:`fds.resources`), run folders go where the options say, and nothing is written in the working
directory except the output folder the user names.

The older console scripts ``fds-infer``, ``fds-train``, ``fds-eval`` stay: they take Hydra overrides only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from fds import resources

OVERRIDES_HELP = ("any config key as KEY=VALUE (Hydra override syntax), e.g. detail.resolution=2048; "
                  "--print-config shows them all")


# ---------------------------------------------------------------------------------------------- Hydra apps
def _train(cfg: DictConfig) -> None:
    from fds.training import train

    train(cfg)


def _infer(cfg: DictConfig) -> None:
    from fds.pipeline import infer

    raise SystemExit(infer(cfg))


def _eval(cfg: DictConfig) -> None:
    from fds.evaluation import evaluate

    evaluate(cfg)


def run_hydra(config_name: str, task: Callable[[DictConfig], None], overrides: list[str],
              print_config: bool = False) -> None:
    """Run ``task`` as the Hydra app of ``configs/<config_name>.yaml`` with ``overrides`` (as the scripts do)."""
    import hydra

    argv = list(overrides) + (["--cfg", "job", "--resolve"] if print_config else [])
    saved = sys.argv
    sys.argv = [f"fds {config_name}", *argv]
    try:
        hydra.main(version_base="1.3", config_path=str(resources.config_dir()), config_name=config_name)(task)()
    finally:
        sys.argv = saved


def _has(overrides: list[str], key: str) -> bool:
    return any(o.lstrip("+~").split("=", 1)[0] == key for o in overrides)


def _quote(value: str | Path) -> str:
    """A string as a quoted Hydra override value (paths may hold spaces, commas, brackets)."""
    return "'" + str(value).replace("'", "\\'") + "'"


def _common(overrides: list[str]) -> list[str]:
    """Where the shipped files are and what the project root is, unless the user set them."""
    extra = []
    if not _has(overrides, "paths.root_dir"):
        extra.append(f"paths.root_dir={_quote(resources.project_root())}")
    if not _has(overrides, "paths.checkpoint_dir"):
        extra.append(f"paths.checkpoint_dir={_quote(resources.checkpoint_dir())}")
    return extra + overrides


def _run_dir(overrides: list[str], run_dir: str | None) -> list[str]:
    if run_dir is not None:
        return [f"hydra.run.dir={_quote(Path(run_dir).expanduser().resolve())}", *overrides]
    return overrides


# ---------------------------------------------------------------------------------------------- sub-commands
def cmd_infer(args: argparse.Namespace, rest: list[str]) -> int:
    inputs = [a for a in args.inputs if "=" not in a]
    overrides = [a for a in args.inputs if "=" in a] + rest
    if not inputs and not _has(overrides, "input"):
        raise SystemExit("fds infer: give at least one photo, folder or glob (fds infer photo.jpg)")
    out = Path(args.output).expanduser().resolve()
    if out.exists() and not out.is_dir():  # checked here: Hydra would fail making its run folder there
        print(f"fds infer: output={out} is a file, not a folder: choose a folder for the results", file=sys.stderr)
        return 2
    ov = []
    if inputs:
        ov.append("input=[" + ",".join(_quote(Path(i).expanduser().absolute()) for i in inputs) + "]")
    ov += [f"output={_quote(out)}"]
    if not _has(overrides, "hydra.run.dir"):  # the run's log and config sit beside the results
        ov.append(f"hydra.run.dir={_quote(out)}")
    for flag, key in (("ckpt", "ckpt"), ("device", "device"), ("resolution", "detail.resolution"),
                      ("float_format", "detail.float_format")):
        value = getattr(args, flag)
        if value is not None:
            ov.append(f"{key}={_quote(value) if flag == 'ckpt' else value}")
    if args.formats:
        ov.append(f"bake.formats=[{','.join(args.formats.split(','))}]")
    if args.all_faces:
        ov.append("proxy.all_faces=true")
    run_hydra("infer", _infer, _common(ov + overrides), args.print_config)
    return 0


def cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    run_hydra("train", _train, _common(_run_dir(args.overrides + rest, args.run_dir)), args.print_config)
    return 0


def cmd_eval(args: argparse.Namespace, rest: list[str]) -> int:
    run_hydra("eval", _eval, _common(_run_dir(args.overrides + rest, args.run_dir)), args.print_config)
    return 0


def cmd_view(args: argparse.Namespace, rest: list[str]) -> int:
    from fds.view import run

    if rest:
        raise SystemExit(f"fds view: unknown arguments {rest}")
    return run(args)


def cmd_demo(args: argparse.Namespace, rest: list[str]) -> int:
    from fds.demo import main as demo_main

    return demo_main(rest + (["--output", args.output] if args.output else []))


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="fds", formatter_class=fmt,
        description="Facial Details Synthesis: one face photo → proxy mesh, wrinkle-level displacement and normal "
                    "maps, and a detailed mesh.",
        epilog="examples:\n  fds infer photo.jpg -o out/          # one photo (or a folder, or a glob)\n"
               "  fds view out/                        # look at the result in the browser, in 3D\n"
               "  fds train experiment=smoke --run-dir runs/smoke\n"
               "  fds eval ckpt=my.safetensors photos.enabled=false\n\n"
               "`fds COMMAND --help` lists each command's options.")
    parser.add_argument("--version", action="version", version=f"fds {__import__('fds').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("infer", help="photos → proxy, detail maps, detailed meshes, previews", formatter_class=fmt,
                       description="Run the whole pipeline on photos. Per face OUT/<photo stem>/ receives proxy.obj, "
                                   "displacement.png/.json/.exr/.npy, normal maps, detailed.glb (.ply/.obj on "
                                   "request), preview.png "
                                   "and result.json; OUT/summary.json lists what worked and what did not "
                                   "(exit status 1 when a photo failed, 2 when the run could not start).",
                       epilog="examples:\n  fds infer photo.jpg\n  fds infer photos/ -o out/ --resolution 2048 "
                              "--formats obj,ply,glb\n  fds infer 'shots/*.png' -o out/ proxy.all_faces=true "
                              "detail.flip_average=false\n\nThe shipped checkpoint is used unless --ckpt is given; "
                              "proxies are cached under the project root (see README, Configuration).")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="photos, folders of photos or globs (KEY=VALUE arguments are config overrides)")
    p.add_argument("-o", "--output", default="fds_output", help="output folder (default ./fds_output)")
    p.add_argument("--ckpt", help="DFDN weights (.safetensors; default: the shipped dfdn_lite)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto")
    p.add_argument("--resolution", type=int, choices=(1024, 2048, 4096), help="output map side (default 1024)")
    p.add_argument("--formats", help="detailed mesh formats, comma-separated: obj,ply,glb")
    p.add_argument("--float-format", dest="float_format", choices=("exr", "npy", "both"),
                   help="float32 displacement file(s) (default both)")
    p.add_argument("--all-faces", action="store_true", help="every face in a photo, not only the largest")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=cmd_infer)

    for name, helptext, example, func in (
            ("train", "train DFDN (Hydra overrides: experiment=..., trainer=gpu, ...)",
             "fds train experiment=dfdn_geo_app_finetune --run-dir runs/ft\n  fds train experiment=smoke", cmd_train),
            ("eval", "score a checkpoint and baselines on held-out scans and real photos",
             "fds eval\n  fds eval ckpt=my.safetensors photos.enabled=false --run-dir runs/eval", cmd_eval)):
        p = sub.add_parser(name, help=helptext, formatter_class=fmt, description=helptext + ".",
                           epilog=f"examples:\n  {example}\n\nWithout --run-dir the run folder is "
                                  "<project root>/logs/" + name + "/runs/<date>_<time> (project root: FDS_ROOT, the "
                                  "checkout of an editable install, or ~/.local/share/fds).")
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)
        p.add_argument("--run-dir", help="the run folder (checkpoints, logs, reports)")
        p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        p.set_defaults(func=func)

    from fds.view import build_parser as view_parser

    p = sub.add_parser("view", help="interactive 3D view of an inference output in the browser")
    view_parser(p)
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("demo", help="the README's demo: face-model files and grace_hopper.jpg through the pipeline",
                       formatter_class=fmt, epilog="example:\n  fds demo --output demo_output\n\nMore options: "
                                                   "python -m fds.demo --help")
    p.add_argument("--output", default=None, help="folder for the demo's files (default ./demo_output)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    unknown = [r for r in rest if r.startswith("-") and args.command != "demo"]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return int(args.func(args, rest) or 0)


# ---------------------------------------------------------------------------------------------- legacy scripts
def _legacy(config_name: str, task: Callable[[DictConfig], None]) -> Callable[[], None]:
    """``fds-<name> KEY=VALUE ...``: the Hydra app with the package's configs and checkpoints."""
    def entry() -> None:
        run_hydra(config_name, task, _common(sys.argv[1:]))
    return entry


train_main = _legacy("train", _train)
infer_main = _legacy("infer", _infer)
eval_main = _legacy("eval", _eval)

__all__ = ["main", "train_main", "infer_main", "eval_main", "run_hydra"]
