(function () {
  "use strict";
  function sortKey(row, column) {
    var cell = row.cells[column];
    return cell ? cell.getAttribute("data-sort") : "";
  }
  function compare(a, b) {
    if (a === b) { return 0; }
    if (a === "") { return 1; }
    if (b === "") { return -1; }
    var x = Number(a), y = Number(b);
    if (!isNaN(x) && !isNaN(y)) { return x - y; }
    return a.localeCompare(b, undefined, {numeric: true});
  }
  function sortTable(table, column, ascending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var a = sortKey(r1, column), b = sortKey(r2, column);
      if (a === "" || b === "") { return compare(a, b); }
      return ascending ? compare(a, b) : compare(b, a);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      if (index === column) { th.setAttribute("aria-sort", ascending ? "ascending" : "descending"); }
      else { th.removeAttribute("aria-sort"); }
    });
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.addEventListener("click", function () {
        sortTable(table, column, th.getAttribute("aria-sort") !== "ascending");
      });
    });
    table.setAttribute("data-sort-ready", "true");
  });
  // "#sort=dice" or "#sort=-dice" opens the per-scan table sorted by that column.
  var match = /^#sort=(-?)(.+)$/.exec(window.location.hash);
  var scans = document.getElementById("table-scans");
  if (match && scans) {
    var wanted = decodeURIComponent(match[2]);
    Array.prototype.forEach.call(scans.tHead.rows[0].cells, function (th, column) {
      if (th.getAttribute("data-column") === wanted) { sortTable(scans, column, match[1] !== "-"); }
    });
  }
}());
