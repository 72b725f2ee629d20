// The `hf` input scheme: `hf:` URLs, `fetchTree { type = "hf"; … }` and flake
// inputs. Parsing, checking and rendering are the Rust core's; this file only
// moves attributes between Nix and Rust and wires the fetch into Nix's store.

#include <deque>

#include "glue.hh"
#include "fetch.hh"

namespace nixhf {

using namespace nix;
using namespace nix::fetchers;

namespace {

Input makeInput(Attrs attrs)
{
    Input input;
    input.attrs = std::move(attrs);
    return input;
}

struct HfInputScheme : compat::InputScheme
{
    std::string_view schemeName() const override
    {
        // Static data in the core, as Nix's scheme registry needs.
        auto name = scheme_name();
        return {name.data(), name.size()};
    }

    std::optional<Input> fromURL(const ParsedURL & url) const override
    {
        if (url.scheme != schemeName())
            return std::nullopt;
        if (url.authority)
            throw BadURL("URL '%s' must not have an authority; write hf:ORG/NAME (not hf://ORG/NAME)", url.to_string());
        rust::Vec<Param> query;
        for (auto & [name, value] : url.query)
            query.push_back(Param{name, value});
        // The path as the user wrote it between the slashes, each segment
        // already percent-decoded; the core splits it its own way.
        auto path = url.renderPath();
        auto canonical = callRust([&](Failure & f) { return input_from_url(path, query, url.to_string(), f); });
        return makeInput(fromRust(canonical, {{"type", std::string(schemeName())}}));
    }

    std::optional<Input> fromAttrs(const Attrs & attrs) const override
    {
        auto canonical = callRust([&](Failure & f) { return input_from_attrs(describing(attrs), f); });
        return makeInput(fromRust(canonical, attrs));
    }

    std::string schemeDescription() const override
    {
        return std::string(scheme_description());
    }

    const std::map<std::string, AttributeInfo> & allowedAttrs() const override
    {
        // AttributeInfo holds C strings: keep copies of Rust's for good.
        static std::deque<std::string> strings;
        static const auto attrs = [] {
            std::map<std::string, AttributeInfo> m;
            for (auto & a : input_attributes()) {
                auto & type = strings.emplace_back(a.type_name);
                auto & doc = strings.emplace_back(a.doc);
                m.emplace(std::string(a.name), AttributeInfo{type.c_str(), a.required, doc.c_str()});
            }
            return m;
        }();
        return attrs;
    }

    ParsedURL urlOf(const Input & input) const override
    {
        auto parts = callRust([&](Failure & f) { return input_to_url(describing(input.attrs), f); });
        ParsedURL url{
            .scheme = std::string(schemeName()),
            .path = splitString<std::vector<std::string>>(std::string(parts.path), "/"),
        };
        for (auto & p : parts.query)
            url.query.insert_or_assign(std::string(p.name), std::string(p.value));
        return url;
    }

    Input applyOverrides(const Input & original, std::optional<std::string> ref, std::optional<Hash> rev) const override
    {
        auto input(original);
        auto gitRev = rev ? rev->gitRev() : "";
        auto canonical = callRust([&](Failure & f) {
            return input_with_override(describing(original.attrs), bool(ref), ref.value_or(""), bool(rev), gitRev, f);
        });
        input.attrs = fromRust(canonical, original.attrs);
        return input;
    }

    std::optional<std::pair<ref<SourceAccessor>, Input>>
    accessorOf(const fetchers::Settings & settings, Store & store, const Input & input, bool fastOnly) const override
    {
        if (fastOnly)
            return snapshotAtHand(settings, store, input);
        return fetchSnapshot(settings, store, input);
    }

    bool isLocked(const fetchers::Settings & settings, const Input & input) const override
    {
        // A commit pins the tree: every file is verified against the hashes
        // the Hub lists for that commit.
        return input.getRev().has_value();
    }

    std::optional<std::string> getFingerprint(Store & store, const Input & input) const override
    {
        auto fp = fingerprintOf(input);
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
