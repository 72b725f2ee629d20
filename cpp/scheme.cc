// The `hf` input scheme: `hf:` URLs, `fetchTree { type = "hf"; … }` and flake
// inputs. Parsing, checking and rendering are the Rust core's; this file only
// moves attributes between Nix and Rust and wires the fetch into Nix's store.

#include "glue.hh"
#include "fetch.hh"

namespace nixhf {

using namespace nix;
using namespace nix::fetchers;

namespace {

Input makeInput(const fetchers::Settings & settings, Attrs canonical, const Attrs & original)
{
    for (auto name : bookkeeping)
        if (auto i = original.find(name); i != original.end())
            canonical.insert_or_assign(name, i->second);
    auto input = compat::makeInput(settings);
    input.attrs = std::move(canonical);
    return input;
}

struct HfInputScheme : InputScheme
{
    std::string_view schemeName() const override
    {
        return "hf";
    }

    std::optional<Input> inputFromURL(const fetchers::Settings & settings, const ParsedURL & url, bool requireTree) const override
    {
        if (url.scheme != schemeName())
            return std::nullopt;
        if (url.authority)
            throw BadURL("URL '%s' must not have an authority; write hf:ORG/NAME (not hf://ORG/NAME)", url.to_string());
        rust::Vec<Param> query;
        for (auto & [name, value] : url.query)
            query.push_back(Param{name, value});
        auto attrs = fromRust(callRust([&] { return input_from_url(url.path, query, url.to_string()); }));
        return makeInput(settings, std::move(attrs), {{"type", std::string(schemeName())}});
    }

    std::optional<Input> inputFromAttrs(const fetchers::Settings & settings, const Attrs & attrs) const override
    {
        auto canonical = fromRust(callRust([&] { return input_from_attrs(describing(attrs)); }));
        return makeInput(settings, std::move(canonical), attrs);
    }

    NIXHF_ALLOWED_ATTRS_TYPE allowedAttrs() const override
    {
        static const std::vector<std::string> names = [] {
            std::vector<std::string> v;
            for (auto & n : allowed_attrs())
                v.emplace_back(n);
            return v;
        }();
        return compat::allowedAttrs(names);
    }

    ParsedURL toURL(const Input & input) const override
    {
        auto parts = callRust([&] { return input_to_url(describing(input.attrs)); });
        ParsedURL url{.scheme = std::string(schemeName()), .path = std::string(parts.path)};
        for (auto & p : parts.query)
            url.query.insert_or_assign(std::string(p.name), std::string(p.value));
        return url;
    }

    Input applyOverrides(const Input & original, std::optional<std::string> ref, std::optional<Hash> rev) const override
    {
        auto input(original);
        if (rev && ref)
            throw BadURL("cannot apply both a commit hash (%s) and a branch/tag name ('%s') to input '%s'",
                rev->gitRev(), *ref, input.to_string());
        if (rev) {
            input.attrs.insert_or_assign("rev", rev->gitRev());
            input.attrs.erase("ref");
        }
        if (ref) {
            input.attrs.insert_or_assign("ref", *ref);
            input.attrs.erase("rev");
        }
        return input;
    }

    std::pair<ref<SourceAccessor>, Input> getAccessor(NIXHF_GET_ACCESSOR_PARAMS) const override
    {
        return fetchSnapshot(NIXHF_ACCESSOR_SETTINGS(input), NIXHF_ACCESSOR_STORE(store), input);
    }

    bool isLocked(NIXHF_IS_LOCKED_PARAMS) const override
    {
        // A commit pins the tree: every file is verified against the hashes
        // the Hub lists for that commit.
        return input.getRev().has_value();
    }

    std::optional<std::string> getFingerprint(NIXHF_FINGERPRINT_PARAMS) const override
    {
        auto fp = std::string(callRust([&] { return input_fingerprint(describing(input.attrs)); }));
        if (fp.empty())
            return std::nullopt;
        return fp;
    }
};

} // namespace

void registerInputScheme()
{
    fetchers::registerInputScheme(std::make_shared<HfInputScheme>());
}

} // namespace nixhf
