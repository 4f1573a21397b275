"""The plugin's view of the cluster: ClawInstances, ClawPlans, their events and the
Secrets it needs, through the `kubernetes` client and any kubeconfig."""

from __future__ import annotations

import base64
import binascii
from typing import Any, cast

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException

from claw_operator.api.models import GROUP, VERSION

INSTANCES, PLANS = "clawinstances", "clawplans"
Obj = dict[str, Any]


class PluginError(Exception):
    """A failure to report in one line (exit code 1)."""


def _explain(exc: ApiException, what: str) -> PluginError:
    if exc.status == 404:
        return PluginError(f"{what} not found")
    if exc.status in (401, 403):
        return PluginError(f"not allowed to read or change {what} (HTTP {exc.status}); check your RBAC")
    return PluginError(f"{what}: the API server answered HTTP {exc.status}")


class Cluster:
    def __init__(self, api_client: kubernetes.client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._core = kubernetes.client.CoreV1Api(api_client)

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None, namespace: str | None) -> Cluster:
        """Like kubectl: --kubeconfig, else $KUBECONFIG, else ~/.kube/config; the context's
        namespace unless -n is given."""
        configuration = kubernetes.client.Configuration()
        try:
            contexts, active = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            chosen = active
            if context:
                chosen = next((c for c in contexts if c.get("name") == context), None)
                if chosen is None:
                    raise PluginError(f'context "{context}" is not in the kubeconfig')
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        except (kubernetes.config.ConfigException, OSError) as exc:
            raise PluginError(f"cannot load the kubeconfig: {exc}") from None
        default_namespace = str(((chosen or {}).get("context") or {}).get("namespace") or "default")
        return cls(kubernetes.client.ApiClient(configuration), namespace or default_namespace)

    # ------------------------------------------------------------ reads
    def instance(self, name: str) -> Obj:
        try:
            return cast(
                Obj,
                self._custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, INSTANCES, name),
            )
        except ApiException as exc:
            raise _explain(exc, f'clawinstance "{name}" in namespace "{self.namespace}"') from None

    def instances(self, all_namespaces: bool = False) -> list[Obj]:
        listed: Obj
        try:
            if all_namespaces:
                listed = cast(Obj, self._custom.list_cluster_custom_object(GROUP, VERSION, INSTANCES))
            else:
                listed = cast(
                    Obj, self._custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, INSTANCES)
                )
        except ApiException as exc:
            raise _explain(exc, "clawinstances") from None
        return list(listed.get("items") or [])

    def plan(self, name: str) -> Obj:
        try:
            return cast(Obj, self._custom.get_cluster_custom_object(GROUP, VERSION, PLANS, name))
        except ApiException as exc:
            raise _explain(exc, f'clawplan "{name}"') from None

    def events(self, name: str, kind: str = "ClawInstance", namespace: str | None = None) -> list[Obj]:
        selector = f"involvedObject.name={name},involvedObject.kind={kind}"
        try:
            listed = self._core.list_namespaced_event(namespace or self.namespace, field_selector=selector)
        except ApiException:
            return []  # events are a courtesy; not being allowed to read them is no error
        events = [self._core.api_client.sanitize_for_serialization(e) for e in listed.items or []]
        return sorted(events, key=_event_time)

    def secret(self, namespace: str, name: str) -> dict[str, str]:
        try:
            secret = self._core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            raise _explain(exc, f"Secret {namespace}/{name}") from None
        data: dict[str, str] = {}
        for key, value in (secret.data or {}).items():
            try:
                data[key] = base64.b64decode(value).decode()
            except (binascii.Error, UnicodeDecodeError):
                data[key] = ""
        return data

    # ------------------------------------------------------------ writes
    def patch_instance(self, name: str, patch: Obj) -> Obj:
        try:
            return cast(
                Obj,
                self._custom.patch_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, INSTANCES, name, patch
                ),
            )
        except ApiException as exc:
            raise _explain(exc, f'clawinstance "{name}" in namespace "{self.namespace}"') from None

    def patch_plan(self, name: str, patch: Obj) -> Obj:
        try:
            return cast(Obj, self._custom.patch_cluster_custom_object(GROUP, VERSION, PLANS, name, patch))
        except ApiException as exc:
            raise _explain(exc, f'clawplan "{name}"') from None


def _event_time(event: Obj) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )
