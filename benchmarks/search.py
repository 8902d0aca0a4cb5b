"""Recipe search vs single techniques, side by side in one run (same data, same gate).

    python benchmarks/search.py [RECIPE]        # default: the shipped digits-search recipe

Runs every candidate of the recipe's `search:` grid as a (cached) ZenML run in a fresh
MODELPRESS_HOME and prints one table: each candidate's gate verdict, accuracy, size and
latency, with size ratios against the baseline and against the best passing
single-technique candidate; then the composed-vs-single ratio on the recipe's objective.
"""

from __future__ import annotations

import os
import sys
import tempfile


def main(recipe_ref: str = "digits-search") -> None:
    os.environ.setdefault("MODELPRESS_HOME", tempfile.mkdtemp(prefix="modelpress-search-bench-"))
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    import yaml

    from modelpress.pipelines.search import run_search
    from modelpress.recipe.schema import load_recipe, resolve_recipe_path

    recipe = load_recipe(recipe_ref)
    raw = yaml.safe_load(resolve_recipe_path(recipe_ref).read_text())
    result = run_search(recipe, raw)
    objective = result.summary["objective"]
    single = result.summary.get("best_single")
    print(f"\n| # | candidate | techniques | gate | accuracy | {objective} | × baseline | "
          f"× best single | latency ms | Pareto |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in result.rows:
        base = r[objective] / r[f"baseline_{objective}"] if f"baseline_{objective}" in r else float("nan")
        vs_single = r[objective] / single[objective] if single else float("nan")
        print(f"| {r['index']} | {r['candidate']} | {r['techniques']} | {'pass' if r['passed'] else 'FAIL'} | "
              f"{r['accuracy']:.4f} | {r[objective]:.4f} | {base:.2f} | {vs_single:.2f} | "
              f"{r['latency_ms']:.3f} | {'*' if r['pareto'] else ''} |")
    if "single_over_composed" in result.summary:
        print(f"\nbest passing composed candidate is {result.summary['single_over_composed']:.2f}x smaller "
              f"on {objective} than the best passing single-technique candidate")
    else:
        print("\nno passing composed candidate and single-technique candidate to compare")
    print(f"promotion: {result.promotion['reason']}; report: {result.report_path}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
