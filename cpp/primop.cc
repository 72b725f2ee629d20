// builtins.fetchHuggingFace: the hf input scheme for any expression, with
// Nix lists for the file filters and the checks users know from fetchurl.

#include "glue.hh"
#include "fetch.hh"

namespace nixhf {

using namespace nix;
using namespace nix::fetchers;

namespace {

const char * const doc = R"(
  Fetch a snapshot of a Hugging Face Hub repository (model, dataset or
  space) into the Nix store and return the same attributes as
  `builtins.fetchTree`: `outPath`, `rev`, `shortRev`, `lastModified`,
  `lastModifiedDate` and `narHash`.

  The argument is a repo id (`"org/name"`), an `hf:` URL
  (`"hf:datasets/org/name/refs/convert/parquet"`), or an attribute set:

  - `repo` (required): the repo id, e.g. `"mistralai/Mistral-7B-Instruct-v0.3"`.
  - `kind`: `"model"` (default), `"dataset"` or `"space"`.
  - `ref`: a branch, tag, `refs/pr/N` or `refs/convert/parquet` (default: `main`).
  - `rev`: a full 40-character commit id (instead of `ref`).
  - `include`, `exclude`: lists of globs (`*` also matches `/`; `"dir/"`
    means everything below `dir`). Only matching files are fetched.
  - `files`: a list of exact file paths to fetch.
  - `narHash`: the expected hash of the result; a mismatch fails.

  Every file is verified (LFS files by sha256, others by git blob sha1)
  before the snapshot reaches the store. Gated and private repos need a
  token: `access-tokens = huggingface.co=hf_…` in nix.conf, or `HF_TOKEN`.

  In pure evaluation mode both `rev` and `narHash` are required;
  `nix flake prefetch hf:org/name` prints them.

  ```nix
  builtins.fetchHuggingFace {
    repo = "sentence-transformers/all-MiniLM-L6-v2";
    include = [ "*.json" "*.safetensors" "vocab.txt" ];
  }
  ```
)";

std::string attrString(EvalState & state, Value & v, const PosIdx pos, std::string_view name)
{
    return std::string(state.forceStringNoCtx(v, pos,
        fmt("while evaluating the attribute '%s' passed to builtins.fetchHuggingFace", name)));
}

Input inputFromArg(EvalState & state, const PosIdx pos, Value & arg)
{
    auto & settings = state.fetchSettings;
    state.forceValue(arg, pos);
    if (arg.type() != nAttrs) {
        auto s = std::string(state.forceStringNoCtx(arg, pos,
            "while evaluating the argument passed to builtins.fetchHuggingFace"));
        return compat::inputFromURL(settings, std::string(primop_url(s)));
    }
    Attrs attrs{{"type", std::string(scheme_name())}};
    for (auto & attr : *arg.attrs()) {
        std::string name(state.symbols[attr.name]);
        state.forceValue(*attr.value, attr.pos);
        switch (attr.value->type()) {
        case nString:
            attrs.emplace(name, attrString(state, *attr.value, attr.pos, name));
            break;
        case nList: {
            rust::Vec<rust::String> items;
            for (auto item : attr.value->listView())
                items.push_back(attrString(state, *item, attr.pos, name));
            attrs.emplace(name, std::string(encode_list(items)));
            break;
        }
        case nInt: {
            auto n = attr.value->integer().value;
            if (n < 0)
                state.error<EvalError>("attribute '%s' passed to builtins.fetchHuggingFace must not be negative", name)
                    .atPos(attr.pos).debugThrow();
            attrs.emplace(name, uint64_t(n));
            break;
        }
        default:
            state.error<TypeError>(
                "attribute '%s' passed to builtins.fetchHuggingFace is %s while a string, a list of strings or an integer is expected",
                name, showType(*attr.value)).atPos(attr.pos).debugThrow();
        }
    }
    return compat::inputFromAttrs(settings, std::move(attrs));
}

void prim_fetchHuggingFace(EvalState & state, compat::CallSite site, compat::PrimOpArgs args, Value & v)
{
    auto pos = compat::callPos(site);
    auto input = inputFromArg(state, pos, *args[0]);
    auto specified = input.getNarHash();

    if (state.settings.pureEval && !(input.getRev() && specified))
        state.error<EvalError>(
            "in pure evaluation mode, 'fetchHuggingFace' needs both 'rev' and 'narHash' to fetch '%s'; "
            "add them (run 'nix flake prefetch %s' to get both) or evaluate with --impure",
            input.to_string(), input.to_string()).atPos(pos).debugThrow();

    state.checkURI(input.toURLString());

    // A pinned snapshot already in the store or a binary cache is used as is,
    // without asking the Hub anything.
    if (auto cached = substituteLocked(state.fetchSettings, state.store, input)) {
        state.allowPath(cached->first);
        compat::emitTreeAttrs(state, pos, cached->first, cached->second, v);
        return;
    }

    // As fetchTree does it: the evaluation's input cache, then the tree
    // mounted in the evaluator's store (copied only once a derivation uses
    // it, on Nix versions that mount lazily). The hash is checked here rather
    // than by mountInput so the error reads like Nix's other hash mismatches
    // (exit status 102), with specified and got the right way round.
    input.attrs.erase("narHash");
    auto cached = state.inputCache->getAccessor(state.fetchSettings, *state.store, input, fetchers::UseRegistries::No);
    auto locked = cached.lockedInput;
    auto storePath = compat::mountInput(state, locked, input, cached.accessor, specified.has_value());
    auto got = locked.getNarHash();
    if (specified && got != specified)
        throw Error((unsigned int) 102, "hash mismatch in Hugging Face snapshot '%s':\n  specified: %s\n       got: %s",
            input.to_string(), specified->to_string(HashFormat::SRI, true), got->to_string(HashFormat::SRI, true));

    compat::emitTreeAttrs(state, pos, storePath, locked, v);
}

} // namespace

void registerPrimOp()
{
    static RegisterPrimOp reg(PrimOp{
        .name = "__fetchHuggingFace",
        .args = {"args"},
        .arity = 1,
        .doc = doc,
        .impl = prim_fetchHuggingFace,
    });
}

} // namespace nixhf
