"""One person's sent mail from the AESLC corpus, splits kept: a stand-in for a user's own mailbox.

    python -m training.owner_mail --corpus ../shared/data/aeslc-enron-email.jsonl.gz \
        --owner shackleton-s --out runs/personal/shackleton-s.jsonl
    # the rest of the corpus: a shared model adapted without this writer ever among its writers
    python -m training.owner_mail --corpus ../shared/data/aeslc-enron-email.jsonl.gz \
        --owner shackleton-s --everyone-else --out runs/personal/without-shackleton-s.jsonl

AESLC ids name the mailbox and its folder (``shackleton-s_sent_123``); the ``sent`` folder
holds what its owner wrote. Personal adaptation is measured on such a corpus: adapt on the
owner's ``train`` mail, choose on ``dev``, report on ``test`` (docs/models.md, "Adapting to one
person's mail"). The output is JSONL the adapter and the evaluator read like any corpus.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from training.data import open_maybe_gzip

log = logging.getLogger("training.owner_mail")


def owner_and_folder(record_id: str) -> tuple[str, str]:
    """``"shackleton-s_sent_123"`` -> ``("shackleton-s", "sent")``."""
    owner, _, rest = record_id.partition("_")
    folder, _, _ = rest.rpartition("_")
    return owner, folder


def records(corpus: str | Path) -> Iterator[dict]:
    """The corpus's records, in order."""
    with open_maybe_gzip(Path(corpus)) as fh:
        yield from map(json.loads, fh)


def owner_mail(corpus: str | Path, owner: str, folder: str = "sent") -> list[dict]:
    """The records of ``owner``'s ``folder``, in corpus order, each with its ``split``."""
    return [r for r in records(corpus) if owner_and_folder(str(r.get("id", ""))) == (owner, folder)]


def everyone_else(corpus: str | Path, owner: str) -> list[dict]:
    """Every record but those of ``owner``'s mailbox (any folder): the corpus a shared model would
    be adapted on had this owner never been among its writers."""
    return [r for r in records(corpus) if owner_and_folder(str(r.get("id", "")))[0] != owner]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--corpus", required=True, help="the AESLC JSONL (ids like owner_sent_123)")
    parser.add_argument("--owner", required=True, help="the mailbox, e.g. shackleton-s")
    parser.add_argument("--folder", default="sent", help="'sent': what the owner wrote")
    parser.add_argument("--out", required=True, help="JSONL to write")
    parser.add_argument("--everyone-else", action="store_true",
                        help="write every other mailbox's records instead (a shared model without this owner)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.everyone_else:
        chosen = everyone_else(args.corpus, args.owner)
    else:
        chosen = owner_mail(args.corpus, args.owner, args.folder)
    if not chosen:
        raise SystemExit(f"no records of {args.owner}'s {args.folder} folder in {args.corpus}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as fh:
        fh.writelines(json.dumps(record) + "\n" for record in chosen)
    log.info("wrote %s: %s", out, dict(Counter(r.get("split") for r in chosen)))


if __name__ == "__main__":
    main()
