# write_result.jl: store one result from Julia, checked first against the mount's schema.
#
#     julia write_result.jl /mnt/results runs/r7
#
# The same steps as write_result.sh: the directory's binding names the schema; the data is
# checked against it before anything is written; a temp file beside the result is renamed onto
# it, which is the commit. Needs the packages JSON and JSONSchema.
using JSON, JSONSchema

length(ARGS) == 2 || error("usage: julia write_result.jl MNT RESULT_ID")
mnt, id = ARGS
target = joinpath(mnt, id * ".json")
dir = dirname(target)

# The result: bare data of the model the directory is bound to.
result = Dict("loss" => 0.25, "accuracy" => 0.91, "step" => 100)

xattr(name, path) = readchomp(pipeline(ignorestatus(`getfattr --only-values -n $name $path`); stderr = devnull))

# NAMESPACE:Model bound to the directory names the schema: MNT/.schemas/NAMESPACE/Model.json.
model = xattr("user.results.model", dir)
isempty(model) && error("$dir is not bound to a model (resultsfs bind $dir NAMESPACE:Model)")
namespace, name = split(model, ':'; limit = 2)
schema = Schema(JSON.parsefile(joinpath(mnt, ".schemas", namespace, name * ".json")))
problem = JSONSchema.validate(schema, result)
if problem !== nothing
    println(stderr, problem)
    exit(1)
end

# Write a temp file (a name starting with "." is never a result), then rename it onto the
# result. The rename is the commit: if the mount refuses the result, it throws and the stored
# result is left as it was. (Base.mv refuses to replace an existing file unless force = true,
# which may remove it first; Base.Filesystem.rename is rename(2), which replaces it in one step.)
tmp = joinpath(dir, "." * basename(target) * "." * string(getpid()) * ".tmp")
write(tmp, JSON.json(result))
try
    Base.Filesystem.rename(tmp, target)
catch err
    reason = join(filter(!isempty, [xattr("user.results.error", f) for f in (tmp, target)]), "\n")
    rm(tmp; force = true)
    println(stderr, target, ": refused: ", sprint(showerror, err), "\n", reason)
    exit(1)
end
println(target, ": stored")
