// poisonscan review page: sort, filter, decide, export decisions.csv. No network.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("poisonscan-data").textContent);
  var table = document.getElementById("suspects");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var byRow = {};
  data.suspects.forEach(function (s) { byRow[String(s.row)] = s; });
  var store = null;
  try { store = window.localStorage; } catch (e) { store = null; }
  var key = "poisonscan-decisions:" + data.scan_key;

  // A text cell a spreadsheet would run as a formula gets a leading ' (same rule as the
  // CSV review files: starts with = + - @ tab CR and is not a plain number).
  function guard(text) {
    if (/^[=+\-@\t\r]/.test(text) && !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) {
      return "'" + text;
    }
    return text;
  }
  function csvText(text) { return '"' + guard(String(text)).replace(/"/g, '""') + '"'; }

  function state(tr) {
    var picked = tr.querySelector("input[type=radio]:checked");
    return {decision: picked ? picked.value : "", note: tr.querySelector("input.note").value};
  }
  function paint(tr) {
    var s = state(tr);
    tr.classList.toggle("drop", s.decision === "drop");
    tr.classList.toggle("keep", s.decision === "keep");
    tr.setAttribute("data-decision", s.decision);
  }
  function save() {
    if (!store) { return; }
    var saved = {};
    rows.forEach(function (tr) {
      var s = state(tr);
      if (s.decision || s.note) { saved[tr.getAttribute("data-row")] = s; }
    });
    try { store.setItem(key, JSON.stringify(saved)); } catch (e) { /* private mode */ }
  }
  function load() {
    if (!store) { return; }
    var saved = {};
    try { saved = JSON.parse(store.getItem(key) || "{}") || {}; } catch (e) { saved = {}; }
    rows.forEach(function (tr) {
      var s = saved[tr.getAttribute("data-row")];
      if (!s) { return; }
      var radio = tr.querySelector("input[type=radio][value='" + (s.decision === "keep" ? "keep" : "drop") + "']");
      if (s.decision && radio) { radio.checked = true; }
      tr.querySelector("input.note").value = String(s.note || "");
      paint(tr);
    });
  }

  var filters = {
    family: document.getElementById("f-family"), cls: document.getElementById("f-class"),
    column: document.getElementById("f-column"), text: document.getElementById("f-text"),
    undecided: document.getElementById("f-undecided")
  };
  function apply() {
    var shown = 0;
    var needle = filters.text.value.toLowerCase();
    rows.forEach(function (tr) {
      var info = byRow[tr.getAttribute("data-row")];
      var ok = (!filters.family.value || info.families.indexOf(filters.family.value) >= 0)
        && (!filters.cls.value || String(info["class"]) === filters.cls.value)
        && (!filters.column.value || info.columns.indexOf(filters.column.value) >= 0)
        && (!needle || tr.textContent.toLowerCase().indexOf(needle) >= 0)
        && (!filters.undecided.checked || !tr.getAttribute("data-decision"));
      tr.hidden = !ok;
      if (ok) { shown += 1; }
    });
    document.getElementById("shown").textContent = String(shown);
  }
  Object.keys(filters).forEach(function (k) {
    filters[k].addEventListener(k === "text" ? "input" : "change", apply);
  });

  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  headers.forEach(function (th, index) {
    if (!th.hasAttribute("data-sort")) { return; }
    th.addEventListener("click", function () {
      var numeric = th.getAttribute("data-sort") === "num";
      var descending = !th.classList.contains("desc");
      headers.forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(descending ? "desc" : "asc");
      var keyed = rows.map(function (tr, i) {
        var v = tr.cells[index].getAttribute("data-value");
        if (v === null) { v = tr.cells[index].textContent; }
        return {tr: tr, i: i, v: numeric ? parseFloat(v) : v.toLowerCase()};
      });
      keyed.sort(function (a, b) {
        var c = 0;
        if (numeric) { c = (isNaN(a.v) ? -Infinity : a.v) - (isNaN(b.v) ? -Infinity : b.v); }
        else { c = a.v < b.v ? -1 : a.v > b.v ? 1 : 0; }
        return (descending ? -c : c) || a.i - b.i;
      });
      keyed.forEach(function (k) { body.appendChild(k.tr); });
    });
  });

  body.addEventListener("change", function (event) {
    var tr = event.target.closest("tr");
    if (tr) { paint(tr); save(); apply(); }
  });
  body.addEventListener("input", function (event) {
    if (event.target.classList.contains("note")) { save(); }
  });

  function decisionsCsv() {
    var lines = ["row,id,decision,note,fingerprint"];
    var ordered = rows.slice().sort(function (a, b) {
      return Number(a.getAttribute("data-row")) - Number(b.getAttribute("data-row"));
    });
    ordered.forEach(function (tr) {
      var s = state(tr);
      if (!s.decision) { return; }
      var info = byRow[tr.getAttribute("data-row")];
      lines.push([String(info.row), csvText(info.id === null ? "" : info.id), s.decision,
                  csvText(s.note), info.fingerprint].join(","));
    });
    return {text: lines.join("\r\n") + "\r\n", count: lines.length - 1};
  }
  document.getElementById("export").addEventListener("click", function () {
    var out = decisionsCsv();
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([out.text], {type: "text/csv;charset=utf-8"}));
    link.download = "decisions.csv";
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
    document.getElementById("status").textContent = "exported " + out.count + " decisions";
  });
  document.getElementById("drop-shown").addEventListener("click", function () {
    rows.forEach(function (tr) {
      if (tr.hidden || tr.getAttribute("data-decision")) { return; }
      tr.querySelector("input[type=radio][value=drop]").checked = true;
      paint(tr);
    });
    save(); apply();
  });
  // for tools and tests: the export as text, and the formula guard it applies
  window.poisonscanDecisionsCsv = function () { return decisionsCsv().text; };
  window.poisonscanGuard = guard;
  load();
  apply();
}());
