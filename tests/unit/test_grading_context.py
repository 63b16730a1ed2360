"""Grading's long-lived objects (executor, image builder, carbon figures' inputs) belong to
the Context that built them: two contexts never share one, one context reuses its own."""

from __future__ import annotations

from pathlib import Path

from greengrader.context import Context, Memo
from greengrader.grading.service import context_builder, context_executor
from greengrader.settings import Settings


def _contexts(tmp_path: Path) -> tuple[Context, Context]:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/gg.db", executor="docker")
    return Context.from_settings(settings), Context.from_settings(settings)  # the same settings object


def test_one_context_reuses_its_executor_and_builder(tmp_path: Path) -> None:
    ctx, _ = _contexts(tmp_path)
    assert context_executor(ctx, "w1@host") is context_executor(ctx, "w1@host")
    assert context_builder(ctx) is context_builder(ctx)


def test_each_node_name_has_its_own_executor(tmp_path: Path) -> None:
    ctx, _ = _contexts(tmp_path)
    first, second = context_executor(ctx, "w1@host"), context_executor(ctx, "w2@host")
    assert first is not second
    assert (getattr(first, "worker", None), getattr(second, "worker", None)) == ("w1@host", "w2@host")


def test_two_contexts_never_share_an_executor_or_builder(tmp_path: Path) -> None:
    one, two = _contexts(tmp_path)
    assert context_executor(one, "w1@host") is not context_executor(two, "w1@host")
    assert context_executor(one) is not context_executor(two)
    assert context_builder(one) is not context_builder(two)


def test_the_memo_is_bounded_and_drops_the_least_recently_used() -> None:
    memo = Memo(limit=2)
    a = memo.get("a", object)
    memo.get("b", object)
    assert memo.get("a", object) is a  # "a" is now the most recently used
    memo.get("c", object)  # drops "b"
    assert memo.get("a", object) is a
    built: list[str] = []
    memo.get("b", lambda: built.append("b"))
    assert built == ["b"]  # built again
