// Live updates by short polling the JSON API with the session cookie.
(function () {
  "use strict";
  var interval = parseInt(document.body.dataset.pollMs || "1000", 10);
  // Once a form is submitted (regrade, export, logout) this page is on its way out: a
  // reload from the poller must not replace the form's own navigation.
  var leaving = false;
  document.addEventListener("submit", function (e) {
    if (!e.target.hasAttribute("data-download")) { leaving = true; }  // a download stays on the page
  });

  function get(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); });
  }

  function grams(v) {  // as the server's `grams` filter: three significant digits
    return Math.abs(v) >= 1000 ? (v / 1000).toPrecision(3).replace(/\.?0+$/, "") + " kg"
                               : Number(v.toPrecision(3)).toString() + " g";
  }

  function pick(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? o : o[k]; }, obj);
  }

  function overview(root) {
    get("/api/v1/overview").then(function (o) {
      var flat = { saved_g: grams(o.carbon.saved_g), disagreements: o.disagreements,
                   generated_at: o.generated_at.replace("T", " ").slice(0, 19) + " UTC",
                   today: o.counts.today, week: o.counts.week, queue: {}, workers: {} };
      o.regions.forEach(function (r) {
        flat.queue[r.name] = r.queue_depth == null ? "n/a" : r.queue_depth;
        flat.workers[r.name] = r.live_workers + (r.live_workers === 0 ? " ⚠ none" : "");
      });
      root.querySelectorAll("[data-k]").forEach(function (el) {
        var v = pick(flat, el.dataset.k);
        if (v !== undefined && String(v) !== el.textContent) { el.textContent = v; }
      });
      document.querySelectorAll("[data-k=generated_at]").forEach(function (el) { el.textContent = flat.generated_at; });
    }).catch(function () {}).finally(function () { setTimeout(function () { overview(root); }, interval); });
  }

  function submission(el) {
    get("/api/v1/submissions/" + el.dataset.id + "/status").then(function (s) {
      if (leaving) { return; }
      if (s.status !== el.dataset.status || String(s.events) !== el.dataset.events) {
        window.location.replace(window.location.pathname);  // re-render with the new state
        return;
      }
      setTimeout(function () { submission(el); }, interval);
    }).catch(function () { setTimeout(function () { submission(el); }, interval); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var o = document.querySelector("[data-live=overview]");
    if (o) { setTimeout(function () { overview(document); }, interval); }
    var s = document.querySelector("[data-live=submission]");
    if (s) { setTimeout(function () { submission(s); }, interval); }
  });
})();
