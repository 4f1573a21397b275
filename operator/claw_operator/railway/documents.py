"""Every GraphQL document the operator sends to Railway, in one place.

Static documents are constants. Two are built per call because GraphQL cannot take a
list of inputs for these root fields: the fleet read (many aliased `serviceInstance`
and `variables` fields in one request, which Railway counts as one request) and the
service configuration (several independent mutations in one request; GraphQL runs
top-level mutation fields in order, so the deploy trigger comes last).

`contract_documents()` returns every static document plus representative builds of the
dynamic ones, so a test can validate all of them against Railway's real schema.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

DEPLOYMENT_FIELDS = "id status createdAt updatedAt statusUpdatedAt"

PROJECT_FIELDS = """
    id
    name
    description
    workspaceId
    createdAt
    environments { edges { node { id name } } }
    services { edges { node { id name } } }
"""

PROJECTS = f"""
query Projects($workspaceId: String, $first: Int, $after: String) {{
  projects(workspaceId: $workspaceId, first: $first, after: $after) {{
    edges {{ node {{ {PROJECT_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

PROJECT = f"""
query Project($id: String!) {{
  project(id: $id) {{ {PROJECT_FIELDS} }}
}}
"""

PROJECT_CREATE = f"""
mutation ProjectCreate($input: ProjectCreateInput!) {{
  projectCreate(input: $input) {{ {PROJECT_FIELDS} }}
}}
"""

PROJECT_DELETE = """
mutation ProjectDelete($id: String!) {
  projectDelete(id: $id)
}
"""

SERVICE_CREATE = """
mutation ServiceCreate($input: ServiceCreateInput!) {
  serviceCreate(input: $input) { id name projectId }
}
"""

# The template service's source and settings, and its unrendered variables (so
# references such as ${{shared.X}} are copied as references, not resolved values).
TEMPLATE_SERVICE = """
query TemplateService($projectId: String!, $environmentId: String!, $serviceId: String!) {
  serviceInstance(environmentId: $environmentId, serviceId: $serviceId) {
    serviceId
    serviceName
    source { image repo }
    startCommand
    healthcheckPath
    healthcheckTimeout
    numReplicas
    region
    restartPolicyType
    restartPolicyMaxRetries
  }
  variables(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId, unrendered: true)
}
"""

SERVICE_INSTANCE_UPDATE = """
mutation ServiceInstanceUpdate(
  $environmentId: String!, $serviceId: String!, $input: ServiceInstanceUpdateInput!
) {
  serviceInstanceUpdate(environmentId: $environmentId, serviceId: $serviceId, input: $input)
}
"""

SERVICE_INSTANCE_LIMITS_UPDATE = """
mutation ServiceInstanceLimitsUpdate($input: ServiceInstanceLimitsUpdateInput!) {
  serviceInstanceLimitsUpdate(input: $input)
}
"""

SERVICE_CONNECT = """
mutation ServiceConnect($id: String!, $input: ServiceConnectInput!) {
  serviceConnect(id: $id, input: $input) { id }
}
"""

VARIABLES = """
query Variables($projectId: String!, $environmentId: String!, $serviceId: String!) {
  variables(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId)
}
"""

VARIABLE_COLLECTION_UPSERT = """
mutation VariableCollectionUpsert($input: VariableCollectionUpsertInput!) {
  variableCollectionUpsert(input: $input)
}
"""

SERVICE_DOMAIN_CREATE = """
mutation ServiceDomainCreate($input: ServiceDomainCreateInput!) {
  serviceDomainCreate(input: $input) { id domain }
}
"""

SERVICE_INSTANCE_DEPLOY = """
mutation ServiceInstanceDeploy($environmentId: String!, $serviceId: String!) {
  serviceInstanceDeployV2(environmentId: $environmentId, serviceId: $serviceId)
}
"""

DEPLOYMENT_REDEPLOY = f"""
mutation DeploymentRedeploy($id: String!) {{
  deploymentRedeploy(id: $id) {{ {DEPLOYMENT_FIELDS} }}
}}
"""

DEPLOYMENT_RESTART = """
mutation DeploymentRestart($id: String!) {
  deploymentRestart(id: $id)
}
"""

# Redeploys an earlier deployment with the image and variables it ran (a plan rollout's
# automatic rollback to an instance's last good deployment).
DEPLOYMENT_ROLLBACK = """
mutation DeploymentRollback($id: String!) {
  deploymentRollback(id: $id)
}
"""

DEPLOYMENT_STOP = """
mutation DeploymentStop($id: String!) {
  deploymentStop(id: $id)
}
"""

DEPLOYMENT = f"""
query Deployment($id: String!) {{
  deployment(id: $id) {{ {DEPLOYMENT_FIELDS} }}
}}
"""

DEPLOYMENTS = f"""
query Deployments($input: DeploymentListInput!, $first: Int) {{
  deployments(input: $input, first: $first) {{
    edges {{ node {{ {DEPLOYMENT_FIELDS} }} }}
  }}
}}
"""

DEPLOYMENT_LOGS = """
query DeploymentLogs($deploymentId: String!, $limit: Int) {
  buildLogs(deploymentId: $deploymentId, limit: $limit) { message severity timestamp }
  deploymentLogs(deploymentId: $deploymentId, limit: $limit) { message severity timestamp }
}
"""

METRICS = """
query Metrics(
  $projectId: String!, $environmentId: String!, $serviceId: String!,
  $startDate: DateTime!, $measurements: [MetricMeasurement!]!
) {
  metrics(
    projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId,
    startDate: $startDate, measurements: $measurements
  ) {
    measurement
    values { ts value }
  }
}
"""

# A whole workspace's usage in one request (three aliased root fields count once): CPU
# and memory over the sampling period, egress over 30 days, both grouped by service, and
# Railway's cost-relevant estimate per project for the billing period.
WORKSPACE_USAGE = """
query WorkspaceUsage(
  $workspaceId: String!, $since: DateTime!, $sampleRateSeconds: Int!,
  $egressSince: DateTime!, $egressSampleRateSeconds: Int!
) {
  usage: metrics(
    workspaceId: $workspaceId, startDate: $since, sampleRateSeconds: $sampleRateSeconds,
    measurements: [CPU_USAGE, MEMORY_USAGE_GB], groupBy: [SERVICE_ID]
  ) {
    measurement
    tags { serviceId }
    values { ts value }
  }
  egress: metrics(
    workspaceId: $workspaceId, startDate: $egressSince, sampleRateSeconds: $egressSampleRateSeconds,
    measurements: [NETWORK_TX_GB], groupBy: [SERVICE_ID]
  ) {
    measurement
    tags { serviceId }
    values { ts value }
  }
  estimated: estimatedUsage(
    workspaceId: $workspaceId, measurements: [CPU_USAGE, MEMORY_USAGE_GB, NETWORK_TX_GB]
  ) {
    projectId
    measurement
    estimatedValue
  }
}
"""

SERVICE_INSTANCE_FIELDS = f"""
    serviceId
    latestDeployment {{ {DEPLOYMENT_FIELDS} }}
    domains {{ serviceDomains {{ domain }} }}
    source {{ image repo }}
    healthcheckPath
    numReplicas
    region
"""

STATIC_DOCUMENTS: dict[str, str] = {
    "Projects": PROJECTS,
    "Project": PROJECT,
    "ProjectCreate": PROJECT_CREATE,
    "ProjectDelete": PROJECT_DELETE,
    "ServiceCreate": SERVICE_CREATE,
    "TemplateService": TEMPLATE_SERVICE,
    "ServiceInstanceUpdate": SERVICE_INSTANCE_UPDATE,
    "ServiceInstanceLimitsUpdate": SERVICE_INSTANCE_LIMITS_UPDATE,
    "ServiceConnect": SERVICE_CONNECT,
    "Variables": VARIABLES,
    "VariableCollectionUpsert": VARIABLE_COLLECTION_UPSERT,
    "ServiceDomainCreate": SERVICE_DOMAIN_CREATE,
    "ServiceInstanceDeploy": SERVICE_INSTANCE_DEPLOY,
    "DeploymentRedeploy": DEPLOYMENT_REDEPLOY,
    "DeploymentRestart": DEPLOYMENT_RESTART,
    "DeploymentRollback": DEPLOYMENT_ROLLBACK,
    "DeploymentStop": DEPLOYMENT_STOP,
    "Deployment": DEPLOYMENT,
    "Deployments": DEPLOYMENTS,
    "DeploymentLogs": DEPLOYMENT_LOGS,
    "Metrics": METRICS,
    "WorkspaceUsage": WORKSPACE_USAGE,
}


# Operations that only read; everything else the client sends changes Railway.
READ_OPERATIONS = frozenset(
    [name for name, doc in STATIC_DOCUMENTS.items() if doc.lstrip().startswith("query")]
    + ["FleetObserve", "ProjectWorkspaces"]
)


# A steady fleet sends the same few shapes over and over (full batches, and the tail).
@functools.lru_cache(maxsize=64)
def fleet_observe(count: int, *, with_variables: bool) -> str:
    """One query reading `count` service instances (aliases i0..iN) and optionally
    their variables (aliases v0..vN). Variables per slot: $pN, $eN, $sN."""
    params: list[str] = []
    fields: list[str] = []
    for n in range(count):
        if with_variables:
            params.append(f"$p{n}: String!")
        params += [f"$e{n}: String!", f"$s{n}: String!"]
        fields.append(
            f"i{n}: serviceInstance(environmentId: $e{n}, serviceId: $s{n}) {{ {SERVICE_INSTANCE_FIELDS} }}"
        )
        if with_variables:
            fields.append(f"v{n}: variables(projectId: $p{n}, environmentId: $e{n}, serviceId: $s{n})")
    return f"query FleetObserve({', '.join(params)}) {{\n  " + "\n  ".join(fields) + "\n}\n"


def project_workspaces(count: int) -> str:
    """One query reading the workspace of `count` projects (aliases w0..wN, variables $pN)."""
    params = ", ".join(f"$p{n}: String!" for n in range(count))
    fields = "\n  ".join(f"w{n}: project(id: $p{n}) {{ id workspaceId }}" for n in range(count))
    return f"query ProjectWorkspaces({params}) {{\n  {fields}\n}}\n"


def service_configure(*, settings: bool, limits: bool, domain: bool, connect: bool) -> str:
    """Independent mutations on one new service, sent as one request. `connect` sets the
    source and triggers the first deployment, so it runs last."""
    params = ["$environmentId: String!", "$serviceId: String!"]
    fields: list[str] = []
    if settings:
        params.append("$settings: ServiceInstanceUpdateInput!")
        fields.append(
            "settings: serviceInstanceUpdate(environmentId: $environmentId, serviceId: $serviceId,"
            " input: $settings)"
        )
    if limits:
        params.append("$limits: ServiceInstanceLimitsUpdateInput!")
        fields.append("limits: serviceInstanceLimitsUpdate(input: $limits)")
    if domain:
        fields.append(
            "domain: serviceDomainCreate(input: {environmentId: $environmentId, serviceId: $serviceId})"
            " { id domain }"
        )
    if connect:
        params.append("$source: ServiceConnectInput!")
        fields.append("connect: serviceConnect(id: $serviceId, input: $source) { id }")
    if not fields:
        raise ValueError("service_configure needs at least one mutation")
    body = " ".join(fields)
    # GraphQL rejects declared-but-unused variables, so declare only what the body uses.
    used = set(re.findall(r"\$\w+", body))
    params = [param for param in params if param.split(":")[0] in used]
    return f"mutation ServiceConfigure({', '.join(params)}) {{\n  " + "\n  ".join(fields) + "\n}\n"


def contract_documents() -> Iterator[tuple[str, str]]:
    """Every document the client can send: statics, and each dynamic shape."""
    yield from STATIC_DOCUMENTS.items()
    for count in (1, 3):
        for with_variables in (False, True):
            yield (
                f"FleetObserve[{count},{with_variables}]",
                fleet_observe(count, with_variables=with_variables),
            )
    for count in (1, 3):
        yield f"ProjectWorkspaces[{count}]", project_workspaces(count)
    for mask in range(1, 16):
        flags = [bool(mask & (1 << bit)) for bit in range(4)]
        yield (
            f"ServiceConfigure[{mask}]",
            service_configure(settings=flags[0], limits=flags[1], domain=flags[2], connect=flags[3]),
        )
