-- Start again after a suspend (spec.suspend: false).
obj.spec.suspend = false
return obj
