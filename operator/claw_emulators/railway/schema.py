"""The executable GraphQL schema: `schema.graphql` plus scalars and resolvers over
`RailwayState`. Root resolvers call state operations; nested fields are plain dicts read
by graphql-core's default resolver."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from graphql import GraphQLError, GraphQLScalarType, GraphQLSchema, build_schema
from graphql.language import ast

from claw_emulators.railway import telemetry
from claw_emulators.railway.deploys import Deployment, describe
from claw_emulators.railway.state import (
    ApiError,
    NotFound,
    Project,
    RailwayState,
    Service,
    ServiceDomain,
    ServiceInstance,
    Token,
)


@dataclass
class RequestContext:
    state: RailwayState
    token: Token


def sdl() -> str:
    return resources.files(__package__).joinpath("schema.graphql").read_text(encoding="utf-8")


# ---- scalars ---------------------------------------------------------------------------


def _serialize_datetime(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, tz=UTC)
    else:
        return str(value)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_datetime(value: Any) -> float:
    if not isinstance(value, str):
        raise GraphQLError("DateTime must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise GraphQLError(f"Invalid DateTime: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _parse_datetime_literal(node: ast.ValueNode, _variables: Any = None) -> float:
    if not isinstance(node, ast.StringValueNode):
        raise GraphQLError("DateTime must be an ISO 8601 string")
    return _parse_datetime(node.value)


def _parse_variables(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        # Never echo the value: it is usually secrets.
        raise GraphQLError("EnvironmentVariables must be an object of string values")
    return dict(value)


def _parse_variables_literal(node: ast.ValueNode, _variables: Any = None) -> dict[str, str]:
    if not isinstance(node, ast.ObjectValueNode):
        raise GraphQLError("EnvironmentVariables must be an object of string values")
    result: dict[str, str] = {}
    for entry in node.fields:
        if not isinstance(entry.value, ast.StringValueNode):
            raise GraphQLError("EnvironmentVariables must be an object of string values")
        result[entry.name.value] = entry.value.value
    return result


# ---- views: state objects as GraphQL-shaped dicts ---------------------------------------


def _connection(nodes: list[dict[str, Any]], cursors: list[str], has_next: bool = False) -> dict[str, Any]:
    return {
        "edges": [{"cursor": cursor, "node": node} for cursor, node in zip(cursors, nodes, strict=True)],
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": False,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


def _cursor(kind: str, value: str | int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def _uncursor(kind: str, cursor: str) -> str:
    try:
        prefix, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except ValueError:
        raise ApiError("Invalid cursor") from None
    if prefix != kind:
        raise ApiError("Invalid cursor")
    return value


def service_view(service: Service) -> dict[str, Any]:
    return {
        "id": service.id,
        "name": service.name,
        "projectId": service.project_id,
        "createdAt": service.created_at,
        "updatedAt": service.updated_at,
    }


def project_view(state: RailwayState, project: Project) -> dict[str, Any]:
    envs: list[dict[str, Any]] = [
        {
            "id": e.id,
            "name": e.name,
            "projectId": project.id,
            "createdAt": e.created_at,
            "updatedAt": e.created_at,
        }
        for e in project.environments
    ]
    services: list[dict[str, Any]] = [service_view(state.services[sid]) for sid in project.service_ids]
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "workspaceId": project.workspace_id,
        "createdAt": project.created_at,
        "updatedAt": project.updated_at,
        "environments": _connection(envs, [e["id"] for e in envs]),
        "services": _connection(services, [s["id"] for s in services]),
    }


def deployment_view(state: RailwayState, dep: Deployment) -> dict[str, Any]:
    status, since = state.status(dep)
    instance = state.instance_of(dep)
    url = instance.domains[0].domain if instance.domains else None
    return {
        **describe(dep, status, since),
        "projectId": dep.project_id,
        "environmentId": dep.environment_id,
        "serviceId": dep.service_id,
        "canRedeploy": True,
        "staticUrl": url,
        "url": url,
    }


def domain_view(domain: ServiceDomain) -> dict[str, Any]:
    return {
        "id": domain.id,
        "domain": domain.domain,
        "projectId": domain.project_id,
        "environmentId": domain.environment_id,
        "serviceId": domain.service_id,
        "targetPort": domain.target_port,
        "createdAt": domain.created_at,
        "updatedAt": domain.created_at,
    }


def instance_view(state: RailwayState, instance: ServiceInstance) -> dict[str, Any]:
    latest = state.latest(instance)
    source = {"image": instance.image, "repo": instance.repo} if instance.has_source else None
    return {
        "id": instance.id,
        "serviceId": instance.service_id,
        "serviceName": state.services[instance.service_id].name,
        "environmentId": instance.environment_id,
        "createdAt": instance.created_at,
        "updatedAt": instance.updated_at,
        "source": source,
        "startCommand": instance.start_command,
        "healthcheckPath": instance.healthcheck_path,
        "healthcheckTimeout": instance.healthcheck_timeout,
        "numReplicas": instance.num_replicas,
        "region": instance.region,
        "restartPolicyType": instance.restart_policy_type,
        "restartPolicyMaxRetries": instance.restart_policy_max_retries,
        "latestDeployment": deployment_view(state, latest) if latest else None,
        "domains": {"serviceDomains": [domain_view(d) for d in instance.domains]},
    }


# ---- root resolvers ---------------------------------------------------------------------


def _ctx(info: Any) -> RequestContext:
    context: RequestContext = info.context
    return context


def _page(items: list[Any], first: int | None) -> tuple[list[Any], bool]:
    if first is None:
        return items, False
    if first < 0:
        raise ApiError("first must not be negative")
    return items[:first], len(items) > first


def q_projects(
    _root: Any, info: Any, workspaceId: str | None = None, first: int | None = None, after: str | None = None
) -> Any:
    ctx = _ctx(info)
    projects = ctx.state.visible_projects(ctx.token, workspaceId)
    if after is not None:
        after_seq = int(_uncursor("project", after))
        projects = [p for p in projects if p.seq > after_seq]
    page, has_next = _page(projects, first)
    return _connection(
        [project_view(ctx.state, p) for p in page], [_cursor("project", p.seq) for p in page], has_next
    )


def q_project(_root: Any, info: Any, id: str) -> Any:
    ctx = _ctx(info)
    return project_view(ctx.state, ctx.state.project(ctx.token, id))


def q_service_instance(_root: Any, info: Any, environmentId: str, serviceId: str) -> Any:
    ctx = _ctx(info)
    return instance_view(ctx.state, ctx.state.instance(ctx.token, environmentId, serviceId))


def q_variables(
    _root: Any,
    info: Any,
    projectId: str,
    environmentId: str,
    serviceId: str | None = None,
    unrendered: bool | None = None,
) -> Any:
    ctx = _ctx(info)
    project, env = ctx.state.environment(ctx.token, environmentId)
    if project.id != projectId:
        raise NotFound("Environment not found")
    if serviceId is None:
        return dict(env.shared_variables)
    instance = ctx.state.instance(ctx.token, environmentId, serviceId)
    if unrendered:
        return dict(instance.variables)
    return ctx.state.rendered_variables(instance)


def q_deployment(_root: Any, info: Any, id: str) -> Any:
    ctx = _ctx(info)
    return deployment_view(ctx.state, ctx.state.deployment(ctx.token, id))


def q_deployments(
    _root: Any, info: Any, input: dict[str, Any], first: int | None = None, after: str | None = None
) -> Any:
    ctx = _ctx(info)
    found = ctx.state.deployments_matching(
        ctx.token, input.get("projectId"), input.get("environmentId"), input.get("serviceId")
    )
    if after is not None:
        after_id = _uncursor("deployment", after)
        ids = [dep.id for dep in found]
        found = found[ids.index(after_id) + 1 :] if after_id in ids else []
    page, has_next = _page(found, first)
    return _connection(
        [deployment_view(ctx.state, dep) for dep in page],
        [_cursor("deployment", d.id) for d in page],
        has_next,
    )


def _log_args(info: Any, deploymentId: str) -> tuple[RailwayState, Deployment, str, float]:
    ctx = _ctx(info)
    dep = ctx.state.deployment(ctx.token, deploymentId)
    status, since = ctx.state.status(dep)
    return ctx.state, dep, status, since


def q_build_logs(
    _root: Any, info: Any, deploymentId: str, limit: int | None = None, filter: str | None = None, **_: Any
) -> Any:
    state, dep, status, _since = _log_args(info, deploymentId)
    return telemetry.build_logs(dep, status, state.clock(), limit=limit, filter_text=filter)


def q_deployment_logs(
    _root: Any, info: Any, deploymentId: str, limit: int | None = None, filter: str | None = None, **_: Any
) -> Any:
    state, dep, status, since = _log_args(info, deploymentId)
    return telemetry.deploy_logs(dep, status, since, state.clock(), limit=limit, filter_text=filter)


# groupBy enum values -> the MetricTags field each fills.
_TAG_FIELDS = {"PROJECT_ID": "projectId", "ENVIRONMENT_ID": "environmentId", "SERVICE_ID": "serviceId"}


def q_metrics(
    _root: Any,
    info: Any,
    startDate: float,
    measurements: list[str],
    endDate: float | None = None,
    projectId: str | None = None,
    environmentId: str | None = None,
    serviceId: str | None = None,
    sampleRateSeconds: int | None = None,
    workspaceId: str | None = None,
    groupBy: list[str] | None = None,
    **_: Any,
) -> Any:
    ctx = _ctx(info)
    end = ctx.state.clock() if endDate is None else endDate
    step = sampleRateSeconds or 60
    if workspaceId is not None or groupBy:
        # A fleet-wide read: every service instance in scope, summed per group.
        if projectId is not None:
            projects = [ctx.state.project(ctx.token, projectId)]
        else:
            projects = ctx.state.visible_projects(ctx.token, workspaceId)
        members = [
            {"projectId": i.project_id, "environmentId": i.environment_id, "serviceId": i.service_id}
            for project in projects
            for i in ctx.state.iter_instances(project)
            if (environmentId is None or i.environment_id == environmentId)
            and (serviceId is None or i.service_id == serviceId)
        ]
        tags = [_TAG_FIELDS[tag] for tag in groupBy or [] if tag in _TAG_FIELDS]
        return telemetry.grouped_metrics(members, tags, measurements, startDate, end, step, ctx.state.usage)
    limits: tuple[float | None, float | None] = (None, None)
    if serviceId is not None:
        service = ctx.state.service(ctx.token, serviceId)
        if environmentId is not None:
            instance = ctx.state.instance(ctx.token, environmentId, service.id)
            limits = (instance.vcpus, instance.memory_gb)
    elif projectId is not None:
        ctx.state.project(ctx.token, projectId)
    key = ":".join(part or "-" for part in (projectId, environmentId, serviceId))
    values = ctx.state.usage.services.get(serviceId) if serviceId is not None else None
    return telemetry.metrics(key, measurements, startDate, end, step, limits, values)


def q_estimated_usage(
    _root: Any,
    info: Any,
    measurements: list[str],
    projectId: str | None = None,
    workspaceId: str | None = None,
    **_: Any,
) -> Any:
    ctx = _ctx(info)
    if projectId is not None:
        projects = [ctx.state.project(ctx.token, projectId)]
    else:
        projects = ctx.state.visible_projects(ctx.token, workspaceId)
    return telemetry.estimated_usage(
        [(project.id, list(project.service_ids)) for project in projects], measurements, ctx.state.usage
    )


def m_project_create(_root: Any, info: Any, input: dict[str, Any]) -> Any:
    ctx = _ctx(info)
    project = ctx.state.create_project(
        ctx.token,
        name=input.get("name"),
        description=input.get("description"),
        workspace_id=input.get("workspaceId"),
        default_environment_name=input.get("defaultEnvironmentName"),
    )
    return project_view(ctx.state, project)


def m_project_delete(_root: Any, info: Any, id: str) -> bool:
    ctx = _ctx(info)
    ctx.state.delete_project(ctx.token, id)
    return True


def m_service_create(_root: Any, info: Any, input: dict[str, Any]) -> Any:
    ctx = _ctx(info)
    source = input.get("source") or {}
    service = ctx.state.create_service(
        ctx.token,
        project_id=input["projectId"],
        environment_id=input.get("environmentId"),
        name=input.get("name"),
        image=source.get("image"),
        repo=source.get("repo"),
        branch=input.get("branch"),
        variables=input.get("variables"),
    )
    return service_view(service)


def m_service_instance_update(
    _root: Any, info: Any, serviceId: str, input: dict[str, Any], environmentId: str | None = None
) -> bool:
    ctx = _ctx(info)
    ctx.state.update_instance(ctx.token, environmentId, serviceId, input)
    return True


def m_service_instance_limits_update(_root: Any, info: Any, input: dict[str, Any]) -> bool:
    ctx = _ctx(info)
    ctx.state.update_limits(
        ctx.token, input["environmentId"], input["serviceId"], input.get("vCPUs"), input.get("memoryGB")
    )
    return True


def m_service_connect(_root: Any, info: Any, id: str, input: dict[str, Any]) -> Any:
    ctx = _ctx(info)
    service = ctx.state.connect(ctx.token, id, input.get("image"), input.get("repo"), input.get("branch"))
    return service_view(service)


def m_variable_collection_upsert(_root: Any, info: Any, input: dict[str, Any]) -> bool:
    ctx = _ctx(info)
    ctx.state.upsert_variables(
        ctx.token,
        project_id=input["projectId"],
        environment_id=input["environmentId"],
        service_id=input.get("serviceId"),
        variables=input["variables"],
        replace=bool(input.get("replace")),
        skip_deploys=bool(input.get("skipDeploys")),
    )
    return True


def m_service_domain_create(_root: Any, info: Any, input: dict[str, Any]) -> Any:
    ctx = _ctx(info)
    domain = ctx.state.create_domain(
        ctx.token, input["environmentId"], input["serviceId"], input.get("targetPort")
    )
    return domain_view(domain)


def m_service_instance_deploy_v2(_root: Any, info: Any, environmentId: str, serviceId: str, **_: Any) -> str:
    ctx = _ctx(info)
    return ctx.state.deploy(ctx.token, environmentId, serviceId).id


def m_deployment_redeploy(_root: Any, info: Any, id: str, **_: Any) -> Any:
    ctx = _ctx(info)
    return deployment_view(ctx.state, ctx.state.redeploy(ctx.token, id))


def m_service_instance_redeploy(_root: Any, info: Any, environmentId: str, serviceId: str) -> bool:
    ctx = _ctx(info)
    ctx.state.redeploy_instance(ctx.token, environmentId, serviceId)
    return True


def m_deployment_restart(_root: Any, info: Any, id: str) -> bool:
    ctx = _ctx(info)
    ctx.state.restart(ctx.token, id)
    return True


def m_deployment_rollback(_root: Any, info: Any, id: str) -> bool:
    ctx = _ctx(info)
    ctx.state.rollback(ctx.token, id)
    return True


def m_deployment_stop(_root: Any, info: Any, id: str) -> bool:
    ctx = _ctx(info)
    ctx.state.stop(ctx.token, id)
    return True


QUERY_RESOLVERS = {
    "projects": q_projects,
    "project": q_project,
    "serviceInstance": q_service_instance,
    "variables": q_variables,
    "deployment": q_deployment,
    "deployments": q_deployments,
    "buildLogs": q_build_logs,
    "deploymentLogs": q_deployment_logs,
    "metrics": q_metrics,
    "estimatedUsage": q_estimated_usage,
}

MUTATION_RESOLVERS = {
    "projectCreate": m_project_create,
    "projectDelete": m_project_delete,
    "serviceCreate": m_service_create,
    "serviceInstanceUpdate": m_service_instance_update,
    "serviceInstanceLimitsUpdate": m_service_instance_limits_update,
    "serviceConnect": m_service_connect,
    "variableCollectionUpsert": m_variable_collection_upsert,
    "serviceDomainCreate": m_service_domain_create,
    "serviceInstanceDeployV2": m_service_instance_deploy_v2,
    "deploymentRedeploy": m_deployment_redeploy,
    "serviceInstanceRedeploy": m_service_instance_redeploy,
    "deploymentRestart": m_deployment_restart,
    "deploymentStop": m_deployment_stop,
    "deploymentRollback": m_deployment_rollback,
}


@cache
def executable_schema() -> GraphQLSchema:
    """Built once per process: the schema is immutable and the state travels in the context."""
    schema = build_schema(sdl())
    # SDL cannot carry scalar behaviour, so it is attached after building. graphql-core 3.3
    # reads the coerce_* hooks, 3.2 the legacy names; both are set (setattr, because the
    # legacy names are declared as methods).
    scalars: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
        "DateTime": (_serialize_datetime, _parse_datetime, _parse_datetime_literal),
        "EnvironmentVariables": (dict, _parse_variables, _parse_variables_literal),
    }
    for name, (output, value, literal) in scalars.items():
        scalar = schema.type_map[name]
        assert isinstance(scalar, GraphQLScalarType)
        for attribute, hook in (
            ("serialize", output),
            ("coerce_output_value", output),
            ("parse_value", value),
            ("coerce_input_value", value),
            ("parse_literal", literal),
            ("coerce_input_literal", literal),
        ):
            setattr(scalar, attribute, hook)
    assert schema.query_type is not None and schema.mutation_type is not None
    for root, resolvers in ((schema.query_type, QUERY_RESOLVERS), (schema.mutation_type, MUTATION_RESOLVERS)):
        missing = set(root.fields) - set(resolvers)
        if missing:
            raise RuntimeError(f"schema.graphql declares root fields without resolvers: {sorted(missing)}")
        for name, resolver in resolvers.items():
            root.fields[name].resolve = resolver
    return schema
