-- Stop the running deployment on Railway (spec.suspend: true).
obj.spec.suspend = true
return obj
