#pragma once
// Fetching a snapshot into the store, shared by the input scheme and the
// primop.

#include "compat.hh"

namespace nixhf {

// The Input::getAccessor of the hf scheme: resolves the ref, downloads and
// verifies the snapshot, adds it to the store and returns the locked input.
std::pair<nix::ref<nix::SourceAccessor>, nix::fetchers::Input>
fetchSnapshot(const nix::fetchers::Settings & settings, nix::Store & store, const nix::fetchers::Input & input);

// The snapshot, if it is at hand without the network: a commit known (the
// input's, or its ref's while fresh) whose snapshot is already in the store.
std::optional<std::pair<nix::ref<nix::SourceAccessor>, nix::fetchers::Input>>
snapshotAtHand(const nix::fetchers::Settings & settings, nix::Store & store, const nix::fetchers::Input & input);

// For an input with rev and narHash: the store path, if it is valid or can be
// substituted, with the input's attributes completed from the cache.
std::optional<std::pair<nix::StorePath, nix::fetchers::Input>>
substituteLocked(const nix::fetchers::Settings & settings, nix::ref<nix::Store> store, const nix::fetchers::Input & input);

// What identifies the input's tree (kind, repo, commit, filters); empty
// while it has no commit.
std::string fingerprintOf(const nix::fetchers::Input & input);

void registerPrimOp();
void registerCachePrimOp();

} // namespace nixhf
