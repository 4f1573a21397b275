-- Argo CD health of a ClawPlan (claw-operator): an invalid plan or a halted rollout is
-- Degraded, a rollout in flight is Progressing, otherwise Healthy.
local hs = {}
local annotations = (obj.metadata and obj.metadata.annotations) or {}

if annotations["claw.io/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused (annotation claw.io/paused); remove it to resume"
  return hs
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local valid = nil
local rolloutComplete = nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Valid" then
      valid = condition
    elseif condition.type == "RolloutComplete" then
      rolloutComplete = condition
    end
  end
end

if valid ~= nil and valid.status == "False" then
  hs.status = "Degraded"
  hs.message = valid.message or valid.reason or "The plan is not valid"
  return hs
end

local rollout = status.rollout or {}
local rolloutMessage = rollout.message
if rolloutMessage == nil and rolloutComplete ~= nil then
  rolloutMessage = rolloutComplete.message
end

local halted = rollout.phase == "Halted"
  or (rolloutComplete ~= nil and rolloutComplete.status == "False" and rolloutComplete.reason == "Halted")
if halted then
  hs.status = "Degraded"
  hs.message = rolloutMessage or "The rollout halted; see the plan's events"
  return hs
end

local progressing = rollout.phase == "Progressing"
  or (rolloutComplete ~= nil and rolloutComplete.status ~= "True")
if progressing then
  hs.status = "Progressing"
  hs.message = rolloutMessage or "Rolling out"
  return hs
end

hs.status = "Healthy"
hs.message = rolloutMessage or ""
return hs
