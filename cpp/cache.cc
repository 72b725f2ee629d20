// builtins.hfHubCache: a Hugging Face cache (what HF_HUB_CACHE names) made
// of snapshots already in the store, without a build and without
// import-from-derivation. The layout is the core's (src/cache.rs); here it
// is written to a temporary folder and added to the store as a
// content-addressed path whose references are the snapshots, so that the
// cache's closure holds them (nix copy, the garbage collector) and the same
// snapshots give the same cache on every machine.

#include "glue.hh"
#include "fetch.hh"

namespace nixhf {

using namespace nix;

namespace {

const char * const doc = R"(
  Make a Hugging Face cache, as `HF_HUB_CACHE` names it, from snapshots
  that are already store paths, in pure evaluation and without a build. The
  argument maps repo ids to snapshots:

  ```nix
  builtins.hfHubCache {
    "sentence-transformers/all-MiniLM-L6-v2" = inputs.minilm;   # a flake input
    "datasets/acme/squad" = builtins.fetchHuggingFace { … };     # or a fetch
    "datasets/acme/squad-parquet" = { snapshot = inputs.squad-parquet; refs = [ "refs/convert/parquet" ]; };
  }
  ```

  A repo id is `ORG/NAME` (a model), `datasets/ORG/NAME` or
  `spaces/ORG/NAME`. A snapshot is anything with `outPath` and `rev` (flake
  inputs and `fetchHuggingFace` results carry both), or `{ snapshot; rev ?;
  refs ? [ "main" ]; }`, or a list of those for several commits of one repo.
  `refs` are the branch or tag names that resolve to it offline.

  The result is a store path laid out as the official client expects
  (`models--ORG--NAME/refs/main`, `snapshots/<commit>/…`), whose snapshot
  folders link to the snapshots themselves: nothing is copied, and the
  snapshots are in the cache's closure. Point the Python libraries at it
  with `HF_HUB_CACHE=<path>` and `HF_HUB_OFFLINE=1`.
)";

const char * const what = "while evaluating the argument passed to builtins.hfHubCache";

// An attribute of an attribute set, or null.
Value * get(EvalState & state, Value & v, std::string_view name)
{
    auto a = v.attrs()->get(state.symbols.create(name));
    return a ? a->value : nullptr;
}

// One snapshot of `key`: where it is, its commit, the refs that name it.
void addSnapshot(EvalState & state, const PosIdx pos, const std::string & key, Value & given,
    StorePathSet & references, rust::Vec<CacheSnapshot> & out)
{
    auto ctx = fmt("while evaluating the snapshot of '%s' passed to builtins.hfHubCache", key);
    state.forceAttrs(given, pos, ctx);
    auto snapshot = get(state, given, "snapshot");
    auto & tree = snapshot ? *snapshot : given;
    if (snapshot)
        state.forceValue(tree, pos);

    NixStringContext context;
    auto path = state.coerceToStorePath(pos, tree, context, ctx);
    for (auto & c : context)
        if (!compat::isExistingPath(c))
            state.error<EvalError>(
                "builtins.hfHubCache: the snapshot of '%s' is built by a derivation; a cache made without a build "
                "links snapshots that already exist (flake inputs, fetchHuggingFace)", key)
                .atPos(pos).debugThrow();
    path = compat::storedPath(state, path, context);
    if (!state.store->isValidPath(path))
        state.error<EvalError>("builtins.hfHubCache: the snapshot of '%s' (%s) is not in the store", key,
            state.store->printStorePath(path)).atPos(pos).debugThrow();

    auto rev = get(state, given, "rev");
    if (!rev && snapshot && snapshot->type() == nAttrs)
        rev = get(state, *snapshot, "rev");
    if (!rev)
        state.error<EvalError>(
            "builtins.hfHubCache: the snapshot of '%s' has no 'rev'; pass a flake input or a fetchHuggingFace result "
            "(they carry it), or { snapshot = …; rev = \"<commit>\"; }", key).atPos(pos).debugThrow();

    CacheSnapshot s{key, std::string(state.forceStringNoCtx(*rev, pos, ctx)), {}, state.store->printStorePath(path)};
    if (auto refs = get(state, given, "refs")) {
        state.forceList(*refs, pos, ctx);
        for (auto r : refs->listView())
            s.refs.push_back(std::string(state.forceStringNoCtx(*r, pos, ctx)));
    } else
        s.refs.push_back("main");
    references.insert(path);
    out.push_back(std::move(s));
}

void prim_hfHubCache(EvalState & state, compat::CallSite site, compat::PrimOpArgs args, Value & v)
{
    auto pos = compat::callPos(site);
    state.forceAttrs(*args[0], pos, what);
    StorePathSet references;
    rust::Vec<CacheSnapshot> snapshots;
    for (auto & attr : *args[0]->attrs()) {
        std::string key(state.symbols[attr.name]);
        state.forceValue(*attr.value, attr.pos);
        if (attr.value->type() == nList)
            for (auto item : attr.value->listView())
                addSnapshot(state, attr.pos, key, *item, references, snapshots);
        else
            addSnapshot(state, attr.pos, key, *attr.value, references, snapshots);
    }
    auto entries = callRust([&](Failure & f) { return hub_cache_layout(snapshots, f); });

    AutoDelete tmp(createTempDir(), true);
    auto root = std::filesystem::path(tmp.path()) / "cache";
    createDirs(root);
    for (auto & e : entries) {
        auto file = root / std::string(e.path);
        createDirs(file.parent_path());
        if (e.is_link)
            createSymlink(std::string(e.value), file);
        else
            writeFile(file, std::string(e.value));
    }
    auto path = state.store->addToStore("hf-hub-cache", {getFSSourceAccessor(), CanonPath(root.string())},
        ContentAddressMethod::Raw::NixArchive, HashAlgorithm::SHA256, references);
    state.allowAndSetStorePathString(path, v);
}

} // namespace

void registerCachePrimOp()
{
    static RegisterPrimOp reg(PrimOp{
        .name = "__hfHubCache",
        .args = {"snapshots"},
        .arity = 1,
        .doc = doc,
        .impl = prim_hfHubCache,
    });
}

} // namespace nixhf
