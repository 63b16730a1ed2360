"""The run_autograder hook printed by `greengrader snippet` and shipped in deploy/hooks."""

from __future__ import annotations

import subprocess
from pathlib import Path

from greengrader.bridge.topics import course_of, subscriptions
from greengrader.cli.bridge import render_snippet
from greengrader.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_shipped_hook_is_the_snippet_output() -> None:
    shipped = (REPO / "deploy" / "hooks" / "run_autograder.greengrader.sh").read_text()
    assert shipped == render_snippet("mqtt.example.edu", "submissions/COURSE", 8883, 10, 64 * 1024 * 1024)


def test_snippet_is_valid_shell_with_qos1_and_no_failure_path(tmp_path: Path) -> None:
    text = render_snippet("h.example", "submissions/cse124", 8883, 5, 1000)
    script = tmp_path / "hook.sh"
    script.write_text(text)
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "mosquitto_pub -h \"$GG_HOST\" -p \"$GG_PORT\" -q 1" in text
    assert "-C 1 -W" in text and text.rstrip().endswith("# ---- end GreenGrader " + "-" * 68)
    assert "__" not in text.replace("__HOST__", "")  # every placeholder filled


def test_broker_cap_matches_the_bridge_default() -> None:
    conf = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert f"message_size_limit {load_settings().max_payload_bytes}\n" in conf


def test_topics() -> None:
    s = load_settings(mqtt_shared_group="bridge")
    assert subscriptions(s) == ["$share/bridge/submissions", "$share/bridge/submissions/+",
                                "$share/bridge/workers/register"]
    assert course_of(s, "submissions") == "default" and course_of(s, "submissions/cse124") == "cse124"


def test_snippet_uses_the_receipt_topic_and_says_when_no_receipt_came() -> None:
    text = render_snippet("h.example", "submissions/cse124", 8883, 5, 1000, receipts="acks")
    assert 'GG_RECEIPTS="${GG_RECEIPTS:-acks}"' in text
    assert '-t "$GG_RECEIPTS/$course/$sid"' in text and '"receipts/$course' not in text
    assert "no receipt within" in text


def test_snippet_refuses_values_the_shell_would_misread() -> None:
    import pytest

    from greengrader.errors import ConfigError

    for host, topic, port in (("h; rm -rf /", "submissions", 8883), ("", "submissions", 8883),
                              ("h.example", "submissions/$(id)", 8883), ("h.example", "submissions/#", 8883),
                              ("h.example", "submissions", 99999)):
        with pytest.raises(ConfigError):
            render_snippet(host, topic, port, 5, 1000)


def test_snippet_cli_rejects_a_bad_port() -> None:
    from click.testing import CliRunner

    from greengrader.cli import cli

    out = CliRunner().invoke(cli, ["snippet", "--host", "h.example", "--port", "99999"])
    assert out.exit_code == 2 and "99999" in out.output
