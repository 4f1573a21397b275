-- Actions Argo CD offers on a ClawPlan.
local actions = {}
local annotations = (obj.metadata and obj.metadata.annotations) or {}
local paused = annotations["claw.io/paused"] == "true"
local halted = obj.status ~= nil and obj.status.rollout ~= nil and obj.status.rollout.phase == "Halted"
actions["resume-rollout"] = {["disabled"] = not halted, ["displayName"] = "Resume the halted rollout"}
actions["pause"] = {["disabled"] = paused, ["displayName"] = "Pause reconciliation"}
actions["unpause"] = {["disabled"] = not paused, ["displayName"] = "Resume reconciliation"}
return actions
