// Putting a verified snapshot into the store with one write. Into a local
// store on the same file system, the files written once by the download into
// a partial directory under Nix's cache dir are moved into place and
// registered with the NAR hash the core computed while they arrived: what
// LocalStore does itself for a dump it restored, minus the second copy. Into
// any other store (a nix-daemon's, one on another file system) the core's
// NAR is streamed as it arrives, and the store writes it.

#include <sys/stat.h>

#include "store.hh"

namespace nixhf {

using namespace nix;

namespace {

std::optional<StorePath> moveIntoLocalStore(
    Store & store, const std::string & name, const std::filesystem::path & tree, const Hash & narHash, uint64_t narSize)
{
    auto local = dynamic_cast<LocalStore *>(&store);
    if (!local)
        return std::nullopt;

    auto ca = ContentAddressWithReferences::fromParts(
        ContentAddressMethod::Raw::NixArchive, narHash, {.others = {}, .self = false});
    auto path = store.makeFixedOutputPathFromCA(name, ca);
    local->addTempRoot(path);
    if (store.isValidPath(path))
        return path;

    auto realPath = local->toRealPath(path);
    PathLocks lock({realPath});
    if (!store.isValidPath(path)) {
        deletePath(realPath);
        if (rename(tree.c_str(), realPath.c_str()) != 0) {
            if (errno == EXDEV)
                return std::nullopt;
            throw SysError("moving %s to %s", PathFmt(tree), PathFmt(realPath));
        }
        canonicalisePathMetaData(realPath, {NIX_WHEN_SUPPORT_ACLS(settings.getLocalSettings().ignoredAcls)});
        auto info = ValidPathInfo::makeFromCA(store, name, std::move(ca), narHash);
        info.narSize = narSize;
        local->registerValidPath(info);
    }
    lock.setDeletion(true);
    return path;
}

} // namespace

bool canMoveInto(Store & store, const std::filesystem::path & dir)
{
    auto local = dynamic_cast<LocalStore *>(&store);
    if (!local)
        return false;
    struct stat here, there;
    auto storeDir = std::filesystem::path(local->toRealPath(StorePath::dummy)).parent_path();
    return stat(dir.c_str(), &here) == 0 && stat(storeDir.c_str(), &there) == 0 && here.st_dev == there.st_dev;
}

StorePath addStream(Store & store, const std::string & name, Source & nar)
{
    return store.addToStoreFromDump(
        nar, name, FileSerialisationMethod::NixArchive, ContentAddressMethod::Raw::NixArchive, HashAlgorithm::SHA256);
}

StorePath addTree(
    Store & store, const std::string & name, const std::filesystem::path & tree, const Hash & narHash, uint64_t narSize)
{
    if (auto path = moveIntoLocalStore(store, name, tree, narHash, narSize))
        return *path;
    debug("copying %s into the store (it cannot be moved there)", PathFmt(tree));
    auto path = store.addToStore(name, {getFSSourceAccessor(), CanonPath(tree.string())},
        ContentAddressMethod::Raw::NixArchive, HashAlgorithm::SHA256);
    auto got = store.queryPathInfo(path)->narHash;
    if (got != narHash)
        throw Error("internal error in nix-hf (please report it): NAR hash of %s is %s, expected %s",
            PathFmt(tree), got.to_string(HashFormat::SRI, true), narHash.to_string(HashFormat::SRI, true));
    return path;
}

} // namespace nixhf
