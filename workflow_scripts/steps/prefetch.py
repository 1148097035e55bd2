"""Fill the HuggingFace cache with everything the offline jobs read (rule `prefetch`).

Usage: python -m workflow_scripts.steps.prefetch --plan '<json>' --manifest prefetch/manifest.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workflow_scripts import hub
from workflow_scripts.saes import saelens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", required=True, help="JSON of plan.prefetch.prefetch_plan")
    parser.add_argument("--manifest", required=True, type=Path)
    args = parser.parse_args(argv)
    hub.prefetch(
        json.loads(args.plan),
        args.manifest,
        load_published=lambda release, sae_id: saelens.load(release, sae_id, device="cpu"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
