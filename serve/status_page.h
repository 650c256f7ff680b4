// Status page: the public view of this agent's incidents and of the health of
// the components the operator names for the public ([[status.component]]:
// a public name and description, covering targets by site/group/target), as
// server-rendered HTML (no external asset, readable on a phone and without
// JavaScript: a few inline lines only turn UTC times into the reader's zone),
// as JSON with the same data, and as an Atom feed of incidents and updates.
//
// Shown: each component's current state and 90 days of uptime bars (derived
// from the incidents that covered it), every open incident with its public
// updates in order and the next-update promise, resolved incidents of the last
// 90 days. Public titles are made from component names, never from target or
// rule names.
//
// Rendered once per change on the reactor thread and served from memory by
// every HTTP worker (an immutable snapshot with an ETag), never per request:
// the page must hold when everyone opens it at the same moment. Optionally
// exported to a directory (temp file, fsync, rename) for any web server or CDN.
//
// Public: no internal notes, no failure details — titles, scope, impact
// counts, times and the public updates operators write.
//
// Pure rendering; thread safety: none needed.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nightshift/clock.h"
#include "nightshift/incident.h"
#include "nightshift/result.h"

namespace nightshift {

struct TargetHealth {
  enum class State { kUnknown, kUp, kDown };
  std::string name;
  std::string group;
  std::string site;
  State state = State::kUnknown;
};
std::string_view to_string(TargetHealth::State state);

// A part of the service as customers know it. A target belongs to it when
// any one of `match` has all its keys (site, group, target) equal to the
// target's.
struct StatusComponent {
  std::string name;  // public
  std::string description;
  std::vector<std::map<std::string, std::string>> match;
};

struct StatusInput {
  std::string agent;
  std::string title;  // the page's heading; empty: "Service status"
  SystemTime now{};
  std::vector<Incident> incidents;  // open, and resolved ones of the history window
  std::vector<TargetHealth> targets;
  // Empty: one component per group of targets (or one for all), named after it.
  std::vector<StatusComponent> components;
  std::vector<std::string> silenced;  // ids of open incidents under a silence (maintenance)
  long long dead_letters = 0;         // notifications given up on
  SystemTime monitoring_since{};      // days before it show "no data"; unset: 90 days of data
  int history_days = 90;
  std::size_t max_resolved = 100;
};

struct StatusPage {
  std::string html;
  std::string json;
  std::string atom;  // application/atom+xml
  std::string etag;  // quoted, over the content (not the render time)
};

// The components in force: the configured ones, or the defaults for `targets`.
std::vector<StatusComponent> effective_components(const StatusInput& input);
// The public title of an incident: what it affects, named by component. Pure.
std::string public_title(const Incident& incident, const std::vector<StatusComponent>& components,
                         const std::vector<TargetHealth>& targets);

StatusPage render_status(const StatusInput& input);

// Writes status.html, status.json and feed.atom into `dir` atomically (temp
// file, fsync, rename), so a web server never serves half a page.
Status export_status(const StatusPage& page, const std::string& dir);

// HTML escaping of text and attribute values. Pure.
std::string html_escape(std::string_view text);

}  // namespace nightshift
