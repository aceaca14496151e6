"""`kzoo hub list | info NAME | download NAME | publish RUN_DIR --name NAME |
convert SOURCE --arch NAME --out DIR`."""

from __future__ import annotations

import json


def add_parser(sub):
    hub = sub.add_parser("hub", help="pretrained presets: list, info, download, publish, convert")
    cmds = hub.add_subparsers(dest="hub_command", required=True)
    cmds.add_parser("list", help="the catalog: name, task, size, metrics, image size")
    info = cmds.add_parser("info", help="a preset's catalog entry (or any reference's metadata)")
    info.add_argument("ref", help="catalog NAME[@VERSION], path, file://, https:// or hf://")
    dl = cmds.add_parser("download", help="fetch a preset into the cache (KZOO_HOME)")
    dl.add_argument("ref", help="catalog NAME[@VERSION], path, file://, https:// or hf://")
    dl.add_argument("--to", help="also copy the preset folder to this new folder")
    pub = cmds.add_parser("publish", help="make a preset of a recipe run and publish it")
    pub.add_argument("run_dir")
    pub.add_argument("--name", required=True)
    pub.add_argument("--to", default="presets", help="a folder (default presets/) or hf://owner/repo")
    pub.add_argument("--version", default="1")
    pub.add_argument("--license", default="Apache-2.0")
    pub.add_argument("--catalog", help="also add the entry to this catalog JSON file")
    pub.add_argument("--force", action="store_true", help="replace an existing archive")
    conv = cmds.add_parser("convert", help="convert published upstream weights (a junyanz .pth, "
                           "a diffusers folder, a URL, hf://) into a kzoo preset")
    conv.add_argument("source", help="a .pth/.safetensors file, a diffusers folder, an http(s) URL, "
                      "hf://owner/repo or a catalog name marked upstream")
    conv.add_argument("--arch", help="junyanz architecture: unet_256, unet_128, resnet_9blocks, "
                      "resnet_6blocks (+ _batch / _instance); torchvision: deeplabv3_resnet50, "
                      "deeplabv3_resnet101, deeplabv3_mobilenet_v3_large; default: the one the "
                      "file matches")
    conv.add_argument("--out", required=True, help="the new preset folder")
    conv.add_argument("--name", help="preset name (default: from the source)")
    conv.add_argument("--reverse", help="CycleGAN: the other direction's generator (e.g. "
                      "zebra2horse.pth for horse2zebra.pth), loaded into generator_ba")
    add_mode_argument(conv, default="eval")
    return hub  # sub-parsers of kzoo.errors.ArgumentParser: errors are one KzooError line


def add_mode_argument(parser, default=None):
    """`--mode eval|authors`: the test-time mode of junyanz networks (`kzoo.layers.test_mode`)."""
    parser.add_argument("--mode", choices=("eval", "authors"), default=default,
                        help="junyanz pix2pix/CycleGAN test-time mode: eval (batch norm running "
                             "statistics, no dropout; test.py --eval) or authors (the authors' "
                             "default test.py: each image's own batch statistics, dropout on); "
                             + ("default eval" if default else
                                "default: the source's recorded mode, else eval"))


def main(args):
    from kzoo.hub import catalog, loader

    if args.hub_command == "list":
        print(catalog.table(catalog.entries()))
        return 0
    if args.hub_command == "info":
        if "://" not in args.ref and "/" not in args.ref and not args.ref.endswith((".gz", ".zip", ".tgz")):
            entry = catalog.lookup(args.ref)
            print(json.dumps(entry, indent=2, sort_keys=True))
            return 0
        meta = loader.metadata(args.ref)
        print(json.dumps({k: v for k, v in meta.items() if k != "config"}, indent=2, sort_keys=True))
        return 0
    if args.hub_command == "download":
        folder = loader.fetch(args.ref)
        if args.to:
            from kzoo.hub.publish import copy_to

            folder = copy_to(folder, args.to)
        print(folder)
        return 0
    if args.hub_command == "convert":
        from kzoo.hub import convert

        folder = convert.convert(args.source, out=args.out, arch=args.arch, name=args.name,
                                 reverse=args.reverse, mode=args.mode)
        meta = json.loads((folder / "metadata.json").read_text())
        print(f"converted {meta['upstream']['source']} ({meta['upstream']['arch']}, sha256 "
              f"{meta['upstream']['sha256']}) into {folder}"
              + (f", {meta['test_mode']} mode" if meta.get("test_mode") else "") + "\n"
              f"load it with kzoo.hub.load({str(folder)!r})")
        return 0
    from kzoo.hub.publish import publish

    entry = publish(args.run_dir, name=args.name, to=args.to, version=args.version,
                    license=args.license, overwrite=args.force)
    if args.catalog:
        if "path" not in entry:
            from kzoo.errors import KzooError

            raise KzooError("--catalog needs a folder destination (--to DIR), not hf://")
        catalog.add_entry(args.catalog, entry)
    if "path" in entry:
        print(f"published {entry['path']} ({entry['size'] / 1e6:.2f} MB)\n"
              f"sha256 {entry['sha256']}\n"
              f"load it with kzoo.hub.load({entry['path']!r}), or host it and load "
              f"'https://HOST/{entry['path'].rsplit('/', 1)[-1]}#sha256={entry['sha256']}'")
    else:
        print(f"published {entry['url']}")
    return 0
