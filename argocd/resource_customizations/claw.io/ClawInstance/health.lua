-- Argo CD health of a ClawInstance (claw-operator): Ready is Healthy; the operator's
-- status.message is passed through so the Argo CD UI says what to do.
local hs = {}
local annotations = (obj.metadata and obj.metadata.annotations) or {}

if annotations["claw.io/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused (annotation claw.io/paused); remove it to resume"
  return hs
end

local status = obj.status
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = (status and status.message) or "Suspended: spec.suspend is true"
  return hs
end

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local message = status.message or ""
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" and condition.status == "True" then
      hs.status = "Healthy"
      hs.message = message
      return hs
    end
  end
end

local phase = status.phase
if phase == "Failed" or phase == "Degraded" then
  hs.status = "Degraded"
elseif phase == "Suspended" then
  hs.status = "Suspended"
else
  -- Pending, Provisioning, Deploying, Deleting, Running before Ready is reported, or none yet.
  hs.status = "Progressing"
end
hs.message = message
return hs
