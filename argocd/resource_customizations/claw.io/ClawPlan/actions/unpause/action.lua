-- Remove the pause annotation: reconciliation resumes.
if obj.metadata.annotations ~= nil then
  obj.metadata.annotations["claw.io/paused"] = nil
end
return obj
