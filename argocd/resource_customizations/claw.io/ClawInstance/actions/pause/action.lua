-- Stop all reconciliation of this object (no Railway call) until unpaused.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["claw.io/paused"] = "true"
return obj
