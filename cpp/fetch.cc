#include "glue.hh"
#include "fetch.hh"

namespace nixhf {

using namespace nix;

std::pair<ref<SourceAccessor>, fetchers::Input>
fetchSnapshot(const fetchers::Settings & settings, Store & store, const fetchers::Input & input)
{
    throw Error("fetching '%s': not built yet", input.to_string());
}

std::optional<std::pair<StorePath, fetchers::Input>>
substituteLocked(ref<Store> store, const fetchers::Input & input)
{
    return std::nullopt;
}

} // namespace nixhf
