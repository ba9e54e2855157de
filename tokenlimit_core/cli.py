"""`python -m tokenlimit_core ...`: argparse dispatch to demo, import-seed, export, migrate, bundle, status.

Bad arguments exit 2 with argparse's usage message; store and file errors print
one line naming what is wrong and exit 1 — never a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from datetime import date, datetime, timezone
from typing import Callable, Optional, Sequence

from .seed_import import SeedFileError
from .settings import Settings, SettingsError
from .store import Store, StoreError, open_store, redact_url

EXIT_ERROR = 1


def _language() -> str:
    for var in ("TOKEN_LIMIT_LANG", "LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        value = os.environ.get(var, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def _day(text: str) -> str:
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD) / 不是日期（YYYY-MM-DD）")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1 / 不是 >= 1 的整数")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number / 不是整数") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (help in English and Chinese)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="URL", help="store URL (default: TOKEN_LIMIT_STORE_URL or the default "
                        "store) / 存储地址（默认：TOKEN_LIMIT_STORE_URL 或默认存储）")
    common.add_argument("--lang", choices=["en", "zh"], default=_language(),
                        help="language of the report (default from LANG) / 报告语言（默认取自 LANG）")
    parser = argparse.ArgumentParser(prog="python -m tokenlimit_core",
                                     description="tokenlimit: token quotas for Open WebUI / Open WebUI 令牌配额")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", parents=[common], help="fill a store with simulated traffic / 用模拟流量填充存储")
    demo.add_argument("--users", type=_positive, default=60, help="number of users / 用户数 (60)")
    demo.add_argument("--days", type=_positive, default=30, help="days of history / 历史天数 (30)")
    demo.add_argument("--seed", type=_whole, default=0, help="random seed / 随机种子 (0)")
    demo.add_argument("--force", action="store_true", help="also into a store with a real policy (replaces it) / "
                      "即使存储已有真实策略也写入（将替换策略）")

    seed = sub.add_parser("import-seed", parents=[common],
                          help="import the original filter's usage file / 导入原过滤器的用量文件")
    seed.add_argument("file", metavar="FILE", help="the usage JSON file / 用量 JSON 文件")

    export = sub.add_parser("export", parents=[common], help="write usage or the ledger / 导出用量或账本")
    export.add_argument("--what", choices=["usage", "ledger"], default="usage",
                        help="daily usage or every request / 每日用量或每个请求 (usage)")
    export.add_argument("--format", choices=["csv", "jsonl"], default="csv", help="output format / 输出格式 (csv)")
    export.add_argument("--from", dest="first", type=_day, default="0001-01-01", metavar="DAY",
                        help="first day, YYYY-MM-DD / 起始日")
    export.add_argument("--to", dest="last", type=_day, default="9999-12-31", metavar="DAY",
                        help="last day, YYYY-MM-DD / 结束日")
    export.add_argument("--user", metavar="ID", help="only this user id / 仅此用户")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout / 输出到文件")

    migrate = sub.add_parser("migrate", parents=[common],
                             help="copy everything between two stores / 在两个存储之间复制全部数据")
    migrate.add_argument("--from", dest="source", metavar="URL",
                         help="source store (default: --store) / 源存储（默认：--store）")
    migrate.add_argument("--to", dest="target", metavar="URL", required=True, help="target store / 目标存储")

    bundle = sub.add_parser("bundle", parents=[common],
                            help="build the single-file filters in filters/ / 生成 filters/ 中的单文件过滤器")
    bundle.add_argument("--check", action="store_true",
                        help="only check that filters/ is current; exit 1 if stale / 仅检查是否过期")
    bundle.add_argument("--out", metavar="DIR", help="output folder (default: filters/) / 输出目录")

    sub.add_parser("status", parents=[common], help="show the store and its policy revision / 显示存储及策略版本")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one subcommand; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "export" and args.first > args.last:
        parser.error(f"export: --from {args.first} is after --to {args.last} / 起始日晚于结束日")
    handler: Callable[[argparse.Namespace], int] = HANDLERS[args.command]
    try:
        return handler(args)
    except (StoreError, SeedFileError, SettingsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted / 已中断", file=sys.stderr)
        return 130


def _store_url(url: Optional[str]) -> str:
    return url or Settings.load().resolved_store_url()


@contextlib.contextmanager
def _opened(url: Optional[str]):
    store: Store = open_store(_store_url(url))
    try:
        yield store
    finally:
        store.close()


def _demo(args: argparse.Namespace) -> int:
    from .demo import generate

    with _opened(args.store) as store:
        record = store.load_policy()
        if record is not None and record.actor != "demo" and not args.force:
            print(f"error: {redact_url(store.url)} already holds a policy (revision {record.revision}, saved by "
                  f"{record.actor or '?'}); demo would replace it and add simulated traffic. Use another store "
                  "(--store tinydb:///tmp/tokenlimit-demo) or --force. / 该存储已有策略；请换用其他存储或加 --force。",
                  file=sys.stderr)
            return EXIT_ERROR
        summary = generate(store, users=args.users, days=args.days, seed=args.seed, progress=True)
        print(summary.describe(args.lang))
        print(f"store / 存储: {redact_url(store.url)}")
    return 0


def _import_seed(args: argparse.Namespace) -> int:
    from .seed_import import import_seed, read

    read(args.file)  # a bad file is reported before any store is opened or created
    with _opened(args.store) as store:
        print(import_seed(store, args.file).describe(args.lang))
    return 0


def _export(args: argparse.Namespace) -> int:
    from . import export

    with _opened(args.store) as store:
        if args.what == "usage":
            rows, columns = export.usage_rows(store, args.first, args.last, args.user), export.USAGE_COLUMNS
        else:
            rows, columns = export.ledger_rows(store, args.first, args.last, args.user), export.LEDGER_COLUMNS
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as fh:
            count = export.write(rows, args.format, fh, columns)
        print(f"{count} rows -> {args.output}" if args.lang == "en" else f"{count} 行 -> {args.output}",
              file=sys.stderr)
        return 0
    try:
        export.write(rows, args.format, sys.stdout, columns)
        sys.stdout.flush()
    except BrokenPipeError:  # `... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from .migrate import migrate

    with _opened(args.source or args.store) as source, _opened(args.target) as target:
        print(migrate(source, target, progress=True).describe(args.lang))
    return 0


def _bundle(args: argparse.Namespace) -> int:
    try:
        from . import bundle
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.bundle":
            raise
        print("error: tokenlimit_core/bundle.py is missing from this installation / 此安装缺少 bundle.py",
              file=sys.stderr)
        return EXIT_ERROR
    return bundle.main((["--check"] if args.check else []) + (["--out", args.out] if args.out else []))


def _status(args: argparse.Namespace) -> int:
    zh = args.lang == "zh"
    with _opened(args.store) as store:
        info = store.info()
        record = store.load_policy()
        print(f"{'存储' if zh else 'store'}: {redact_url(store.url)}")
        for key, value in info.items():
            print(f"  {key}: {redact_url(value) if key == 'url' and isinstance(value, str) else value}")
        if record is None:
            print("策略：尚无（首次使用时由设置生成）" if zh else "policy: none yet (seeded from the settings on first use)")
        else:
            when = datetime.fromtimestamp(record.updated_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            print(f"策略版本 {record.revision}（{when}，{record.actor}）" if zh
                  else f"policy revision {record.revision} (saved {when} by {record.actor or '?'})")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": _demo, "import-seed": _import_seed, "export": _export, "migrate": _migrate, "bundle": _bundle,
    "status": _status,
}
