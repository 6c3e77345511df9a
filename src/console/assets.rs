//! The console's style sheet and script, embedded in the binary (no CDN, no font download).

/// `/assets/console.css`.
pub const CSS: &str = r#"
:root { --ink: #1b1b1b; --muted: #555; --line: #ccc; --accent: #000091; --bad: #b00020; --ok: #18753c; }
* { box-sizing: border-box; }
body { margin: 0; font-family: system-ui, sans-serif; color: var(--ink); background: #fff; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 1rem; padding: .5rem 1rem; border-bottom: 3px solid var(--accent); }
header nav ul { display: flex; flex-wrap: wrap; gap: .75rem; list-style: none; margin: 0; padding: 0; }
.brand { font-weight: bold; color: var(--accent); }
.logout { margin-left: auto; }
main { padding: 1rem; max-width: 80rem; }
a { color: var(--accent); }
a:focus, button:focus, input:focus, select:focus { outline: 3px solid #ffbf47; outline-offset: 1px; }
.skip { position: absolute; left: -10000px; }
.skip:focus { position: static; }
table { border-collapse: collapse; margin: 1rem 0; width: 100%; }
caption { text-align: left; font-weight: bold; padding: .25rem 0; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th button { all: unset; cursor: pointer; font-weight: bold; }
th[aria-sort="ascending"] button::after { content: " ▲"; }
th[aria-sort="descending"] button::after { content: " ▼"; }
form.inline { display: inline; }
label { display: block; margin-top: .5rem; font-weight: bold; }
input, select, button { font: inherit; padding: .3rem .5rem; }
.filters { display: flex; flex-wrap: wrap; gap: 1rem; align-items: end; }
.notice { padding: .5rem; border-left: 4px solid var(--accent); background: #eef; }
.notice.error { border-color: var(--bad); background: #fee; }
.bad { color: var(--bad); font-weight: bold; }
.ok { color: var(--ok); font-weight: bold; }
ol.timeline { list-style: none; padding-left: 0; border-left: 3px solid var(--accent); }
ol.timeline li { margin: 0 0 .75rem 0; padding-left: 1rem; }
ol.timeline time { font-family: monospace; color: var(--muted); }
pre { background: #f5f5f5; padding: .5rem; overflow: auto; }
.pager { margin: .5rem 0; }
"#;

/// `/assets/console.js`: sorts a table by a column when its header button is pressed
/// (keyboard included: the headers are buttons). Pages work without it.
pub const JS: &str = r#"
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th button').forEach(function (button, index) {
    button.addEventListener('click', function () {
      var th = button.parentElement;
      var ascending = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('th').forEach(function (h) { h.setAttribute('aria-sort', 'none'); });
      th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (row) {
        var text = row.cells[index] ? row.cells[index].textContent.trim() : '';
        var number = parseFloat(text.replace(/\s|€/g, '').replace(',', '.'));
        return /^-?[\d\s]+([.,]\d+)?\s*€?$/.test(text) ? number : text.toLowerCase();
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"#;
