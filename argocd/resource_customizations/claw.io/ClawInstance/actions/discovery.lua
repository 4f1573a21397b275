-- Actions Argo CD offers on a ClawInstance; each is an annotation or spec.suspend, which
-- the operator acts on (API.md, "Imperative actions" and "Pause").
local actions = {}
local annotations = (obj.metadata and obj.metadata.annotations) or {}
local suspended = obj.spec ~= nil and obj.spec.suspend == true
local paused = annotations["claw.io/paused"] == "true"

actions["restart"] = {["disabled"] = suspended or paused, ["displayName"] = "Restart (no rebuild)"}
actions["redeploy"] = {["disabled"] = suspended or paused, ["displayName"] = "Build and deploy again"}
actions["suspend"] = {["disabled"] = suspended}
actions["resume"] = {["disabled"] = not suspended}
actions["pause"] = {["disabled"] = paused, ["displayName"] = "Pause reconciliation"}
actions["unpause"] = {["disabled"] = not paused, ["displayName"] = "Resume reconciliation"}
return actions
