-- Restart the running deployment without a rebuild: the operator acts on a new time once.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["claw.io/restartedAt"] = os.date("!%Y-%m-%dT%XZ")
return obj
