// Live state without reloading: every N seconds, fetch /live.json and update the elements that carry
// data-live-key / data-live-state. Without JavaScript (or on any error) the page simply stays as rendered.
(function () {
  var root = document.querySelector("[data-live]");
  if (!root || !window.fetch) return;
  function apply(d) {
    document.querySelectorAll("[data-live-key]").forEach(function (el) {
      var k = el.getAttribute("data-live-key").split(".");
      var v = k.length === 2 ? (d.numbers[k[0]] || {})[k[1]] : d[k[0]];
      if (v !== undefined && v !== null && el.textContent !== String(v)) el.textContent = v;
    });
    document.querySelectorAll("[data-live-state]").forEach(function (el) {
      var n = d.numbers[el.getAttribute("data-live-state")];
      if (n && el.textContent !== n.label) { el.textContent = n.label; el.className = "badge st-" + n.state; }
    });
  }
  function tick() {
    fetch("/live.json", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d && d.ok) apply(d); })
      .catch(function () {});
  }
  setInterval(tick, 1000 * (parseInt(root.getAttribute("data-live"), 10) || 15));
})();
