"""The real kubectl against the emulator: `apply` of a bad ClawInstance names every bad
field, and `explain` prints the CRD's field descriptions from the OpenAPI documents."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from claw_emulators.kubernetes import KubernetesServer

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")

BAD_INSTANCE = """\
apiVersion: claw.io/v1alpha1
kind: ClawInstance
metadata: {name: bad, namespace: tenant-a}
spec:
  planRef: pro
  channels:
  - {type: %(channel)s, secretRef: {name: creds}}
  env:
  - {name: %(env_name)s, value: x}
  - name: BOTH
    value: x
    valueFrom: {secretKeyRef: {name: llm, key: apiKey}}
  railway: {mode: SelfHosted}
"""


async def kubectl(kubeconfig: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(kubeconfig),
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_apply_names_every_bad_field(k8s: KubernetesServer, kubeconfig: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(BAD_INSTANCE % {"channel": "slack", "env_name": "1BAD"})
    code, out = await kubectl(kubeconfig, "apply", "-f", str(manifest))
    assert code != 0
    assert 'The ClawInstance "bad" is invalid' in out
    assert '* spec.channels[0].type: Unsupported value: "slack": supported values: "feishu"' in out
    assert '* spec.env[0].name: Invalid value: "1BAD": spec.env[0].name in body should match' in out
    # The API server skips the CEL rules while the schema errors stand, and says so.
    assert "some validation rules were not checked" in out

    manifest.write_text(BAD_INSTANCE % {"channel": "feishu", "env_name": "GOOD"})
    code, out = await kubectl(kubeconfig, "apply", "-f", str(manifest))
    assert code != 0
    assert '* spec.env[1]: Invalid value: "object": set exactly one of value or valueFrom' in out
    assert (
        '* spec.railway: Invalid value: "object": '
        "railway.tokenSecretRef is required when railway.mode is SelfHosted" in out
    )
    assert k8s.get("claw", "tenant-a", "bad") is None


async def test_apply_refuses_unknown_fields_and_then_accepts_the_fix(
    k8s: KubernetesServer, kubeconfig: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "typo.yaml"
    head = "apiVersion: claw.io/v1alpha1\nkind: ClawInstance\nmetadata: {name: bot, namespace: tenant-a}\n"
    manifest.write_text(head + "spec: {planRef: pro, ownr: {userId: u}}\n")
    code, out = await kubectl(kubeconfig, "apply", "-f", str(manifest))
    assert code != 0 and 'strict decoding error: unknown field "spec.ownr"' in out
    manifest.write_text(head + "spec: {planRef: pro, owner: {userId: u}}\n")
    code, out = await kubectl(kubeconfig, "apply", "-f", str(manifest))
    assert code == 0, out
    manifest.write_text(head + "spec: {planRef: pro, owner: {userId: u}, suspend: maybe}\n")
    code, out = await kubectl(kubeconfig, "apply", "-f", str(manifest))
    assert code != 0 and "spec.suspend: Invalid value" in out, out


async def test_explain_prints_field_descriptions(kubeconfig: Path) -> None:
    code, out = await kubectl(kubeconfig, "explain", "clawinstance.spec.railway")
    assert code == 0, out
    assert "Which Railway account runs this instance." in out
    assert "tokenSecretRef" in out and "Railway token of the tenant; required when SelfHosted." in out
    code, out = await kubectl(kubeconfig, "explain", "clawinstance.spec.channels")
    assert code == 0, out
    assert "Messaging channels, unique by type" in out
    assert "type\t<string> -required-" in out and "enum: feishu, dingtalk, wecom, telegram" in out
    code, out = await kubectl(kubeconfig, "explain", "clawplans")
    assert code == 0, out
    assert "KIND:       ClawPlan" in out
