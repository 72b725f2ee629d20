// Fetching a snapshot into the store: Nix's side of it. The Rust core
// resolves, lists, downloads and verifies into a partial directory under
// Nix's cache dir; this file supplies what only Nix knows (settings, tokens,
// caches, the store, the progress bar, Ctrl-C) and puts the verified tree
// into the store.

#include <cstring>

#include "glue.hh"
#include "fetch.hh"
#include "bridge.hh"
#include "store.hh"

namespace nixhf {

using namespace nix;
using namespace nix::fetchers;

namespace {

struct HfSettings : Config
{
    // Said once, in the core: the nix-hf program's options have the same.
    const SettingDefaults defaults = setting_defaults();

    Setting<std::string> endpoint{this, "", "hf-endpoint",
        "The Hugging Face Hub to fetch from (a mirror or self-hosted hub). "
        "Empty: `HF_ENDPOINT`, else https://huggingface.co. Not part of an input's identity. "
        "Tokens from the environment (HF_TOKEN, token files) are sent only to huggingface.co and to the "
        "Hub `HF_ENDPOINT` names; another endpoint gets a token only from an `access-tokens` entry for its host."};

    Setting<std::string> tokenFile{this, "", "hf-token-file",
        "A file holding a Hugging Face token, read when fetching by the process that evaluates (the user running "
        "nix; root for nixos-rebuild), so the token itself stays out of nix.conf and the store. Like HF_TOKEN, it is "
        "sent only to huggingface.co and to the Hub `HF_ENDPOINT` names; an `access-tokens` entry comes first."};

    Setting<unsigned int> connections{this, defaults.connections, "hf-connections",
        "How many connections nix-hf opens to the Hub and its CDN at once."};

    Setting<unsigned int> stallTimeout{this, defaults.stall_timeout, "hf-stall-timeout",
        "Seconds a connection may stay silent before nix-hf counts the attempt as failed."};

    Setting<unsigned int> retries{this, defaults.retries, "hf-retries",
        "How many attempts nix-hf makes at each request (an API call, or an 8 MiB piece of a file) before giving "
        "up. Failed attempts, waits the server asks for (Retry-After, RateLimit) and renewals of expired download "
        "URLs all count."};

    Setting<unsigned int> retryTime{this, defaults.retry_time, "hf-retry-time",
        "Seconds from a request's first attempt after which nix-hf starts no further attempt and no further wait "
        "(an attempt under way is bounded by hf-stall-timeout)."};

    Setting<std::string> resumableCopy{this, "fresh", "hf-resumable-copy",
        "Which fetches into a nix-daemon's store (or any store a tree cannot be moved into) also keep a copy in "
        "the user's cache, so that an interrupted fetch resumes, at the cost of a second write of every byte and, "
        "until the store has the snapshot, twice its size on disk: `fresh` (the default) those whose narHash is "
        "not known yet (a new lock), `always` every one (a locked input too), `never` none (an interrupted fetch "
        "then starts again). Into a local store on the file system of the user's cache nix-hf writes once and resumes "
        "either way."};
};

HfSettings hfSettings;
GlobalConfig::Register registerHfSettings(&hfSettings);

// Ties the core's callbacks to Nix: progress goes to the progress bar as a
// file transfer, file names show with -v, Ctrl-C stops the fetch.
struct NixFetchContext : FetchContext
{
    Activity act;

    NixFetchContext(const std::string & what)
        : act(compat::fileTransferActivity(what))
    { }

protected:
    bool checkInterrupted() const override
    {
        try {
            checkInterrupt();
            return false;
        } catch (Interrupted &) {
            return true;
        }
    }

    void showProgress(uint64_t done, uint64_t expected) const override
    {
        act.progress(done, expected);
    }

    void showFile(std::string_view path, uint64_t size) const override
    {
        printMsg(lvlTalkative, "fetching '%s' (%d bytes)", path, size);
    }

    void showNote(std::string_view message) const override
    {
        printMsg(lvlTalkative, "%s", message);
    }
};

// A fetcher-cache key from the fields the core chose.
Cache::Key cacheKey(std::string_view domain, const rust::Vec<Param> & fields)
{
    Attrs attrs;
    for (auto & f : fields)
        attrs.emplace(std::string(f.name), std::string(f.value));
    return {domain, std::move(attrs)};
}

// Nix's fetcher cache entries. The ref's commit is kept for tarball-ttl like
// github: refs; a commit's date never changes, so it is kept for good.
Cache::Key refKey(const Input & input)
{
    auto endpoint = hfSettings.endpoint.get();
    return cacheKey("hfRefToRev", callRust([&](Failure & f) { return ref_cache_key(describing(input.attrs), endpoint, f); }));
}

Cache::Key revKey(const Input & input, const std::string & rev)
{
    return cacheKey("hfRevToLastModified", callRust([&](Failure & f) { return rev_cache_key(describing(input.attrs), rev, f); }));
}

// A commit's date, if an earlier fetch cached it (it never changes).
std::optional<uint64_t> cachedLastModified(Cache & cache, const Input & input, const Hash & rev)
{
    if (auto hit = cache.lookup(revKey(input, rev.gitRev())))
        return maybeGetIntAttr(*hit, "lastModified");
    return std::nullopt;
}

// The input at a commit, as the core builds it (the ref gone, the date
// added), keeping Nix's bookkeeping attributes.
Input lockedInput(const Input & input, const std::string & rev, uint64_t lastModified)
{
    auto result(input);
    result.attrs = fromRust(
        callRust([&](Failure & f) { return input_locked(describing(input.attrs), rev, lastModified, f); }),
        input.attrs);
    return result;
}

// A snapshot's accessor: the store path's, except that reading a flake.nix
// the snapshot does not have explains that an hf: input is not a flake.
// (Nix evaluates an input's flake.nix through this accessor when the flake
// input lacks `flake = false`.) Everything else passes through unchanged.
struct SnapshotAccessor : compat::FilteringSourceAccessor
{
    SnapshotAccessor(ref<SourceAccessor> tree, const std::string & shown)
        : compat::FilteringSourceAccessor(SourcePath(tree), [shown](const CanonPath &) {
            return RestrictedPathError(
                "'%s' is a Hugging Face Hub repository, not a flake: it has no flake.nix. "
                "Declare the flake input with 'flake = false', e.g. inputs.NAME = { url = \"%s\"; flake = false; };",
                shown, shown);
        })
    { }

    bool isAllowed(const CanonPath & path) override
    {
        static const CanonPath flakeNix("/flake.nix");
        return path != flakeNix || next->pathExists(path);
    }
};

// The fingerprint of a locked snapshot's tree as Nix's caches key it.
std::string treeFingerprint(const Input & locked)
{
    auto scheme = scheme_name();
    return compat::cacheFingerprint({scheme.data(), scheme.size()}, fingerprintOf(locked));
}

// The fetcher-cache entry that tells Nix's fetchToStore the NAR hash of the
// tree an accessor with this fingerprint serves, so that Nix neither copies
// nor hashes a snapshot the plugin has already put into the store.
Cache::Key treeHashKey(const Input & locked)
{
    return makeSourcePathToHashCacheKey(treeFingerprint(locked), ContentAddressMethod::Raw::NixArchive, CanonPath::root);
}

// What getAccessor returns for a snapshot in the store. `given` is the input
// as the caller gave it: what the user wrote, for the flake = false hint.
std::pair<ref<SourceAccessor>, Input> fromStore(Store & store, const StorePath & path, Input locked, const Input & given)
{
    auto tree = store.requireStoreObjectAccessor(path);
    tree->setPathDisplay("«" + locked.to_string() + "»");
    auto accessor = make_ref<SnapshotAccessor>(tree, given.to_string());
    accessor->fingerprint = treeFingerprint(locked);
    return {accessor, std::move(locked)};
}

// The store path of a locked snapshot that an earlier fetch put into the
// store, if it is still there.
std::optional<StorePath> storedTree(Cache & cache, Store & store, const Input & locked)
{
    auto hit = cache.lookup(treeHashKey(locked));
    if (!hit)
        return std::nullopt;
    auto narHash = Hash::parseSRI(getStrAttr(*hit, "hash"));
    auto path = store.makeFixedOutputPath(
        locked.getName(), FixedOutputInfo{.method = FileIngestionMethod::NixArchive, .hash = narHash, .references = {}});
    store.addTempRoot(path);
    if (!store.isValidPath(path))
        return std::nullopt;
    return path;
}

// Where a store path's files are on this machine, for the snapshot index
// (a daemon's store is read through the same directory).
std::string realPathOf(Store & store, const StorePath & path)
{
    if (auto local = dynamic_cast<LocalFSStore *>(&store))
        return local->toRealPath(path).string();
    return store.printStorePath(path);
}

// Partial downloads live here, under Nix's cache dir, until their snapshot
// is in the store; an interrupted fetch resumes from them.
std::string partialRoot()
{
    auto root = getCacheDir() / "nix-hf" / "partial";
    createDirs(root);
    return root.string();
}

enum class ResumableCopy { Fresh, Always, Never };

// hf-resumable-copy, checked wherever a snapshot is looked up (Determinate
// Nix, say, finds a fetched one without fetching), so that a wrong value is
// told wherever it is set, not first on the day someone fetches through a
// daemon.
ResumableCopy resumableCopy()
{
    auto & policy = hfSettings.resumableCopy.get();
    if (policy == "fresh")
        return ResumableCopy::Fresh;
    if (policy == "always")
        return ResumableCopy::Always;
    if (policy == "never")
        return ResumableCopy::Never;
    throw UsageError("hf-resumable-copy is '%s'; set it to 'fresh' (the default), 'always' or 'never'", policy);
}

FetchRequest makeRequest(const fetchers::Settings & settings, const Input & input)
{
    FetchRequest req;
    req.attrs = describing(input.attrs);
    req.endpoint_setting = hfSettings.endpoint.get();
    for (auto & [host, token] : settings.accessTokens.get())
        req.access_tokens.push_back(Param{host, token});
    req.token_file = hfSettings.tokenFile.get();
    req.connections = hfSettings.connections.get();
    req.stall_timeout = hfSettings.stallTimeout.get();
    req.retries = hfSettings.retries.get();
    req.retry_time = hfSettings.retryTime.get();
    if (auto caFile = fileTransferSettings.caFile.get())
        req.ca_file = caFile->string();
    req.partial_root = partialRoot();
    req.known_last_modified = 0;
    return req;
}

// The snapshot's NAR as Nix reads it to stream it into a store: the core's
// stream, which ends only once every file is verified. Nix reads 8 KiB at a
// time; they are copied from what the core lends, a piece at a time. Throws
// the core's failure (or what a callback threw) when it fails.
struct NarStream : Source
{
    Fetch & fetch;
    const FetchContext & ctx;
    rust::Slice<const uint8_t> lent;
    size_t at = 0;

    NarStream(Fetch & fetch, const FetchContext & ctx)
        : fetch(fetch)
        , ctx(ctx)
    { }

    size_t read(char * data, size_t len) override
    {
        if (at == lent.size()) {
            Failure failure{false, ErrorKind::Bug, {}};
            lent = fetch.next_nar(ctx, failure);
            at = 0;
            ctx.rethrow();
            if (failure.failed)
                throwFailure(failure);
            if (lent.empty())
                throw EndOfFile("the NAR of the snapshot has ended");
        }
        auto n = std::min(len, lent.size() - at);
        std::memcpy(data, lent.data() + at, n);
        at += n;
        return n;
    }
};

} // namespace

std::string fingerprintOf(const Input & input)
{
    return std::string(callRust([&](Failure & f) { return input_fingerprint(describing(input.attrs), f); }));
}

namespace {

// What Nix's fetcher cache knows of an input: the commit of its rev (with
// the date an earlier fetch found) or, while fresh, of its ref; or the
// commit an expired entry gave, should the Hub be unreachable.
struct Known
{
    std::string rev;
    uint64_t lastModified = 0;
    std::optional<Input> stale;
};

Known lookUp(Cache & cache, const Input & input)
{
    Known k;
    if (auto rev = input.getRev()) {
        if (auto lm = cachedLastModified(cache, input, *rev))
            k = {rev->gitRev(), *lm, std::nullopt};
    } else if (auto hit = cache.lookupWithTTL(refKey(input))) {
        k = {getStrAttr(*hit, "rev"), getIntAttr(*hit, "lastModified"), std::nullopt};
        debug("using the cached commit %s of '%s'", k.rev, input.to_string());
    } else if (auto old = cache.lookupExpired(refKey(input)))
        k.stale = lockedInput(input, getStrAttr(old->value, "rev"), getIntAttr(old->value, "lastModified"));
    return k;
}

// The snapshot of a known commit, if an earlier fetch left it in the store.
std::optional<std::pair<ref<SourceAccessor>, Input>>
inStore(Cache & cache, Store & store, const Input & input, const Known & known)
{
    if (known.rev.empty())
        return std::nullopt;
    auto result = lockedInput(input, known.rev, known.lastModified);
    auto path = storedTree(cache, store, result);
    if (!path)
        return std::nullopt;
    debug("'%s' at %s is already in the store", input.to_string(), known.rev);
    return fromStore(store, *path, result, input);
}

} // namespace

std::optional<std::pair<ref<SourceAccessor>, Input>>
snapshotAtHand(const fetchers::Settings & settings, Store & store, const Input & input)
{
    resumableCopy();
    auto cache = settings.getCache();
    return inStore(*cache, store, input, lookUp(*cache, input));
}

std::pair<ref<SourceAccessor>, Input> fetchSnapshot(const fetchers::Settings & settings, Store & store, const Input & input)
{
    auto policy = resumableCopy();
    auto cache = settings.getCache();
    auto known = lookUp(*cache, input);
    // The commit is known and its snapshot already in the store: nothing to
    // ask the Hub.
    if (auto at = inStore(*cache, store, input, known))
        return *at;
    auto req = makeRequest(settings, input);
    req.known_rev = known.rev;
    req.known_last_modified = known.lastModified;
    auto & stale = known.stale;

    // Into a local store on this file system the verified tree is moved;
    // into any other (a nix-daemon's) its NAR is streamed while it arrives,
    // and a copy kept here as hf-resumable-copy says: see README, How bytes
    // move.
    req.stream = !canMoveInto(store, std::string(req.partial_root));
    req.keep = !req.stream || policy == ResumableCopy::Always
               || (policy == ResumableCopy::Fresh && !input.getNarHash());

    // Held until the snapshot is in the store: the partial directory's lock.
    auto fetch = callRust([&](Failure & f) { return new_fetch(req, f); });
    NixFetchContext ctx(input.to_string());
    // Ctrl-C wakes the core at once, whatever it is waiting for.
    auto interrupter = fetch->interrupter();
    auto onInterrupt = createInterruptCallback([&]() { interrupter->interrupt(); });
    Failure failure{false, ErrorKind::Bug, {}};
    auto out = fetch->run(ctx, failure);
    ctx.rethrow();
    if (failure.failed) {
        if (stale && failure.kind == ErrorKind::Unreachable)
            if (auto path = storedTree(*cache, store, *stale)) {
                warn("%s; using the commit %s of '%s' fetched earlier", std::string(failure.message),
                    getStrAttr(stale->attrs, "rev"), input.to_string());
                return fromStore(store, *path, *stale, input);
            }
        throwFailure(failure);
    }
    auto result(input);
    result.attrs = fromRust(out.locked, input.attrs);
    auto rev = getStrAttr(result.attrs, "rev");
    auto lastModified = getIntAttr(result.attrs, "lastModified");

    std::optional<StorePath> storePath;
    std::optional<Hash> narHash;
    if (req.stream) {
        NarStream nar(*fetch, ctx);
        storePath = addStream(store, input.getName(), nar);
        narHash = store.queryPathInfo(*storePath)->narHash;
    } else {
        auto tree = callRust([&](Failure & f) { return fetch->wait_tree(ctx, f); });
        ctx.rethrow();
        narHash = Hash::parseNonSRIUnprefixed(std::string(tree.nar_sha256), HashAlgorithm::SHA256);
        storePath = addTree(store, input.getName(), std::string(tree.tree), *narHash, tree.nar_size);
    }
    onInterrupt.reset();
    try {
        callRust([&](Failure & f) { fetch->stored(realPathOf(store, *storePath), f); });
    } catch (Error & e) {
        // Only a later fetch's reuse of unchanged files depends on it.
        warn("%s", e.msg());
    }
    if (out.reused_bytes)
        printMsg(lvlTalkative, "took %d bytes of '%s' from this machine instead of the network", out.reused_bytes,
            input.to_string());

    if (!input.getRev())
        cache->upsert(refKey(input), Attrs{{"rev", rev}, {"lastModified", lastModified}});
    cache->upsert(revKey(input, rev), Attrs{{"lastModified", lastModified}});
    // Nix's fetchToStore would hash the tree again (and copy it, in 2.34);
    // tell it the hash, and so where the tree already is.
    cache->upsert(treeHashKey(result), {{"hash", narHash->to_string(HashFormat::SRI, true)}});

    printMsg(lvlTalkative, "fetched %d files (%d bytes) of '%s' at %s", out.files, out.bytes, input.to_string(), rev);
    return fromStore(store, *storePath, result, input);
}

std::optional<std::pair<StorePath, Input>> substituteLocked(const fetchers::Settings & settings, ref<Store> store, const Input & input)
{
    resumableCopy();
    auto rev = input.getRev();
    if (!rev || !input.getNarHash())
        return std::nullopt;
    auto storePath = input.computeStorePath(*store);
    try {
        compat::ensurePath(*store, storePath);
    } catch (Error & e) {
        debug("'%s' is not in the store or a substituter (%s); fetching it", input.to_string(), e.what());
        return std::nullopt;
    }
    auto result(input);
    if (auto lm = cachedLastModified(*settings.getCache(), input, *rev))
        result.attrs.insert_or_assign("lastModified", *lm);
    return std::make_pair(storePath, result);
}

} // namespace nixhf
