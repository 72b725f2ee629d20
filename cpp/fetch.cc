// Fetching a snapshot into the store: Nix's side of it. The Rust core
// resolves, lists, downloads and verifies into a partial directory under
// Nix's cache dir; this file supplies what only Nix knows (settings, tokens,
// caches, the store, the progress bar, Ctrl-C) and puts the verified tree
// into the store.

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
    Setting<std::string> endpoint{this, "", "hf-endpoint",
        "The Hugging Face Hub to fetch from (a mirror or self-hosted hub). "
        "Empty: `HF_ENDPOINT`, else https://huggingface.co. Not part of an input's identity."};

    Setting<unsigned int> connections{this, 8, "hf-connections",
        "How many connections nix-hf opens to the Hub and its CDN at once."};

    Setting<unsigned int> stallTimeout{this, 30, "hf-stall-timeout",
        "Seconds a connection may stay silent before nix-hf retries the transfer."};

    Setting<unsigned int> retries{this, 6, "hf-retries",
        "How many times nix-hf tries a request that fails for a passing reason (a dropped connection, a stall, "
        "429, 5xx) before giving up. Waits the server asks for (Retry-After) do not count."};
};

HfSettings hfSettings;
GlobalConfig::Register registerHfSettings(&hfSettings);

// Ties the core's callbacks to Nix: progress goes to the progress bar as a
// file transfer, file names show with -v, Ctrl-C stops the fetch.
struct NixFetchContext : FetchContext
{
    Activity act;

    NixFetchContext(const std::string & what)
        : act(*logger, lvlInfo, actFileTransfer, fmt("fetching '%s'", what), Logger::Fields{what}, getCurActivity())
    { }

    void check_interrupt() const override
    {
        checkInterrupt();
    }

    void progress(uint64_t done, uint64_t expected) const override
    {
        act.progress(done, expected);
    }

    void file_started(rust::Str path, uint64_t size) const override
    {
        printMsg(lvlTalkative, "fetching '%s' (%d bytes)", std::string(path), size);
    }
};

std::string strAttr(const Input & input, const char * name)
{
    return maybeGetStrAttr(input.attrs, name).value_or("");
}

// Nix's fetcher cache entries. The ref's commit is kept for tarball-ttl like
// github: refs; a commit's date never changes, so it is kept for good. The
// endpoint is part of the ref key (a mirror may lag) but not of anything that
// identifies content.
Cache::Key refKey(const Input & input, const std::string & endpoint)
{
    return {"hfRefToRev", {
        {"kind", strAttr(input, "kind")},
        {"repo", strAttr(input, "repo")},
        {"ref", strAttr(input, "ref")},
        {"endpoint", endpoint}}};
}

Cache::Key revKey(const Input & input, const std::string & rev)
{
    return {"hfRevToLastModified", {{"kind", strAttr(input, "kind")}, {"repo", strAttr(input, "repo")}, {"rev", rev}}};
}

// A commit's date, if an earlier fetch cached it (it never changes).
std::optional<uint64_t> cachedLastModified(Cache & cache, const Input & input, const Hash & rev)
{
    if (auto hit = cache.lookup(revKey(input, rev.gitRev())))
        return maybeGetIntAttr(*hit, "lastModified");
    return std::nullopt;
}

std::string fingerprintOf(const Input & input)
{
    return std::string(callRust([&] { return input_fingerprint(describing(input.attrs)); }));
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

// The fetcher-cache entry that tells Nix's fetchToStore the NAR hash of the
// tree an accessor with this fingerprint serves, so that Nix neither copies
// nor hashes a snapshot the plugin has already put into the store.
Cache::Key treeHashKey(const std::string & fingerprint)
{
    return makeSourcePathToHashCacheKey(fingerprint, ContentAddressMethod::Raw::NixArchive, CanonPath::root);
}

// What getAccessor returns for a snapshot in the store.
std::pair<ref<SourceAccessor>, Input> fromStore(Store & store, const StorePath & path, Input locked)
{
    auto tree = store.requireStoreObjectAccessor(path);
    tree->setPathDisplay("«" + locked.to_string() + "»");
    auto accessor = make_ref<SnapshotAccessor>(tree, locked.to_string());
    accessor->fingerprint = fingerprintOf(locked);
    return {accessor, std::move(locked)};
}

// The store path of a locked snapshot that an earlier fetch put into the
// store, if it is still there.
std::optional<StorePath> storedTree(Cache & cache, Store & store, const Input & locked)
{
    auto hit = cache.lookup(treeHashKey(fingerprintOf(locked)));
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

// What the scheme returns and flake.lock records: the commit instead of the
// ref, and the commit's date.
Input lockedInput(const Input & input, const std::string & rev, uint64_t lastModified)
{
    auto result(input);
    result.attrs.erase("ref");
    result.attrs.insert_or_assign("rev", rev);
    result.attrs.insert_or_assign("lastModified", lastModified);
    return result;
}

// Partial downloads live here, under Nix's cache dir, until their snapshot
// is in the store; an interrupted fetch resumes from them.
std::string partialRoot()
{
    auto root = getCacheDir() / "nix-hf" / "partial";
    createDirs(root);
    return root.string();
}

} // namespace

std::pair<ref<SourceAccessor>, Input> fetchSnapshot(const fetchers::Settings & settings, Store & store, const Input & input)
{
    auto cache = settings.getCache();
    auto endpointUrl = std::string(endpoint(hfSettings.endpoint.get()));

    FetchRequest req;
    req.attrs = describing(input.attrs);
    req.endpoint_setting = hfSettings.endpoint.get();
    for (auto & [host, token] : settings.accessTokens.get())
        req.access_tokens.push_back(Param{host, token});
    req.connections = hfSettings.connections.get();
    req.stall_timeout = hfSettings.stallTimeout.get();
    req.retries = hfSettings.retries.get();
    if (auto caFile = fileTransferSettings.caFile.get())
        req.ca_file = caFile->string();
    req.partial_root = partialRoot();
    req.known_last_modified = 0;
    // The ref's commit from an earlier fetch whose tarball-ttl has passed:
    // used, with a warning, if the Hub cannot be reached (as for github:).
    std::optional<Input> stale;

    if (auto rev = input.getRev()) {
        if (auto lm = cachedLastModified(*cache, input, *rev)) {
            req.known_rev = rev->gitRev();
            req.known_last_modified = *lm;
        }
    } else if (auto hit = cache->lookupWithTTL(refKey(input, endpointUrl))) {
        req.known_rev = getStrAttr(*hit, "rev");
        req.known_last_modified = getIntAttr(*hit, "lastModified");
        debug("using the cached commit %s of '%s'", req.known_rev, input.to_string());
    } else if (auto old = cache->lookupExpired(refKey(input, endpointUrl)))
        stale = lockedInput(input, getStrAttr(old->value, "rev"), getIntAttr(old->value, "lastModified"));

    // The commit is known and its snapshot already in the store: nothing to
    // ask the Hub.
    if (!req.known_rev.empty()) {
        auto result = lockedInput(input, std::string(req.known_rev), req.known_last_modified);
        if (auto path = storedTree(*cache, store, result)) {
            debug("'%s' at %s is already in the store", input.to_string(), std::string(req.known_rev));
            return fromStore(store, *path, result);
        }
    }

    FetchOutcome out;
    {
        NixFetchContext ctx(input.to_string());
        try {
            out = fetch_snapshot(req, ctx);
        } catch (rust::Error & e) {
            // Ctrl-C surfaces from Rust as an error: rethrow Nix's own.
            checkInterrupt();
            if (stale && is_unreachable(e.what())) {
                if (auto path = storedTree(*cache, store, *stale)) {
                    warn("%s; using the commit %s of '%s' fetched earlier", e.what(),
                        getStrAttr(stale->attrs, "rev"), input.to_string());
                    return fromStore(store, *path, *stale);
                }
            }
            throw Error("%s", Uncolored(std::string(e.what())));
        }
    }
    AutoCloseFD partialLock(out.lock_fd);
    auto rev = std::string(out.rev);
    auto narHash = Hash::parseNonSRIUnprefixed(std::string(out.nar_sha256), HashAlgorithm::SHA256);
    auto storePath = addTree(store, input.getName(), std::string(out.tree), narHash, out.nar_size);
    deletePath(std::string(out.partial_dir));
    try {
        remember_snapshot(req, realPathOf(store, storePath), out.manifest);
    } catch (rust::Error & e) {
        warn("%s", std::string(e.what()));
    }
    if (out.reused_bytes)
        printMsg(lvlTalkative, "took %d bytes of '%s' from this machine instead of the network", out.reused_bytes,
            input.to_string());

    auto result = lockedInput(input, rev, out.last_modified);

    if (!input.getRev())
        cache->upsert(refKey(input, endpointUrl), Attrs{{"rev", rev}, {"lastModified", uint64_t(out.last_modified)}});
    cache->upsert(revKey(input, rev), Attrs{{"lastModified", uint64_t(out.last_modified)}});
    // Nix's fetchToStore would hash the tree again (and copy it, in 2.34);
    // tell it the hash, and so where the tree already is.
    cache->upsert(treeHashKey(fingerprintOf(result)), {{"hash", narHash.to_string(HashFormat::SRI, true)}});

    printMsg(lvlTalkative, "fetched %d files (%d bytes) of '%s' at %s", out.files, out.bytes, input.to_string(), rev);
    return fromStore(store, storePath, result);
}

std::optional<std::pair<StorePath, Input>> substituteLocked(const fetchers::Settings & settings, ref<Store> store, const Input & input)
{
    auto rev = input.getRev();
    if (!rev || !input.getNarHash())
        return std::nullopt;
    auto storePath = input.computeStorePath(*store);
    try {
        store->ensurePath(storePath);
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
