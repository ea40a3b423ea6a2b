"""The spend report as one self-contained HTML page: inline CSS, inline SVG bars, a little inline
JavaScript for the filters, and nothing fetched from anywhere (a Content-Security-Policy of
``default-src 'none'`` makes the browser refuse any request the page could make).

The page is complete without JavaScript (every figure is rendered here). With it, the origin
and date filters recompute the totals, the daily bars and the tables from the entries embedded
as JSON; the filter is also read from and written to the address's fragment
(``report.html#origin=https://api.example.com&from=2026-11-20&to=2026-11-30``), so a filtered
view can be bookmarked. The caps and the list of payments that are not final are the wallet's
state now and are not filtered.

Every journal string (origins, reasons, method names) is hostile: it is HTML-escaped in markup
and attributes, and the embedded JSON escapes ``<``, ``>`` and ``&`` so it cannot end its
``<script>`` element. Amounts travel as decimal strings of base units and are summed with
``BigInt`` in the browser, so no amount is rounded through a float.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from fractions import Fraction
from html import escape
from typing import Any

from mpp_client.cli.output import format_money, printable
from mpp_client.money import Currency, Money
from mpp_client.report.model import GroupRow, Report

__all__ = ["render_html"]

_CHART_W, _CHART_H, _PAD = 900, 180, 28
_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:24px;color:#1d232b;
background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#5b6675;margin:0 0 16px}
form{display:flex;gap:16px;align-items:end;flex-wrap:wrap;padding:12px;background:#f3f5f8;
border-radius:6px}
label{display:flex;flex-direction:column;font-size:12px;color:#5b6675}
table{border-collapse:collapse;margin:4px 0 8px}
th,td{padding:4px 10px;text-align:left;border-bottom:1px solid #e3e7ec;vertical-align:middle}
th{font-size:12px;color:#5b6675;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bar{display:inline-block;height:10px;background:#3b6fd8;vertical-align:middle}
.bar.held{background:#e3a008}.track{width:220px;white-space:nowrap}
.attention{border-left:4px solid #c81e1e;padding:8px 12px;background:#fdf2f2}
tr.unknown td{color:#9b1c1c;font-weight:600}tr.inflight td{color:#8a5a00}
.totals{display:flex;gap:12px;flex-wrap:wrap}
.card{padding:10px 14px;border:1px solid #e3e7ec;border-radius:6px;min-width:180px}
.card b{display:block;font-size:18px}
svg text{font-size:10px;fill:#5b6675}
.over{color:#9b1c1c;font-weight:600}h2 small .bar{width:12px}small{font-weight:400;color:#5b6675}
"""

# The filter: sums the embedded entries again with BigInt and writes the figures into the
# elements the page rendered (found by their data- attributes).
_SCRIPT = """
(function(){
var data=JSON.parse(document.getElementById('mpp-data').textContent);
var cur=data.currencies;
function fmt(base,c){var d=cur[c].decimals,s=base.toString(),neg=s[0]==='-';
if(neg)s=s.slice(1);if(d===0)return (neg?'-':'')+s+' '+cur[c].label;
s=s.padStart(d+1,'0');var w=s.slice(0,s.length-d),f=s.slice(s.length-d).replace(/0+$/,'');
while(f.length<2)f+='0';return (neg?'-':'')+w+'.'+f+' '+cur[c].label;}
var form=document.getElementById('filter'),o=document.getElementById('f-origin'),
a=document.getElementById('f-from'),b=document.getElementById('f-to');
function readHash(){var h=location.hash.replace(/^#/,'');if(!h)return;
h.split('&').forEach(function(p){var i=p.indexOf('=');if(i<0)return;
var k=p.slice(0,i),v;try{v=decodeURIComponent(p.slice(i+1));}catch(err){return;}
if(k==='origin')o.value=v;if(k==='from')a.value=v;if(k==='to')b.value=v;});}
function put(el,base,c){el.setAttribute('data-base',base.toString());el.textContent=fmt(base,c);}
function apply(){
var origin=o.value,from=a.value||data.days[0],to=b.value||data.days[data.days.length-1];
var day={},group={origin:{},method:{}},tot={};
data.entries.forEach(function(e){
if(e.status==='released')return;if(origin&&e.origin!==origin)return;
if(e.day<from||e.day>to)return;var n=BigInt(e.amount),k=e.status==='spent'?0:1;
var dk=e.currency+'|'+e.day;day[dk]=day[dk]||[0n,0n];day[dk][k]+=n;
tot[e.currency]=tot[e.currency]||[0n,0n];tot[e.currency][k]+=n;
['origin','method'].forEach(function(g){var gk=e.currency+'|'+e[g];
var cell=group[g][gk]=group[g][gk]||[0n,0n,0,0];cell[k]+=n;cell[2]+=1;
if(e.state==='unknown')cell[3]+=1;});});
document.querySelectorAll('[data-total]').forEach(function(el){
var c=el.getAttribute('data-currency'),t=tot[c]||[0n,0n];
put(el,t[el.getAttribute('data-total')==='spent'?0:1],c);});
var scale={};Object.keys(day).forEach(function(k){var c=k.split('|')[0],v=day[k][0]+day[k][1];
if(!scale[c]||v>scale[c])scale[c]=v;});
document.querySelectorAll('rect[data-day]').forEach(function(r){
var c=r.getAttribute('data-currency'),d=r.getAttribute('data-day'),
v=(day[c+'|'+d]||[0n,0n]),s=scale[c]||0n,kind=r.getAttribute('data-kind');
var spent=v[0],held=v[1],inside=d>=from&&d<=to;
var h=s?Number(spent*1000n/s)*data.chart.height/1000:0,
hh=s?Number(held*1000n/s)*data.chart.height/1000:0;
if(kind==='spent'){r.setAttribute('height',h);r.setAttribute('y',data.chart.base-h);
r.setAttribute('data-base',spent.toString());}
else{r.setAttribute('height',hh);r.setAttribute('y',data.chart.base-h-hh);
r.setAttribute('data-base',held.toString());}
r.style.opacity=inside?1:0.25;});
document.querySelectorAll('text[data-scale]').forEach(function(t){
var c=t.getAttribute('data-scale');t.textContent=fmt(scale[c]||0n,c);});
['origin','method'].forEach(function(g){var max={};
Object.keys(group[g]).forEach(function(k){var c=k.split('|')[0],v=group[g][k][0]+group[g][k][1];
if(!max[c]||v>max[c])max[c]=v;});
document.querySelectorAll('tr[data-group="'+g+'"]').forEach(function(tr){
var c=tr.getAttribute('data-currency'),v=group[g][c+'|'+tr.getAttribute('data-key')];
tr.hidden=!v;if(!v)return;tr.classList.toggle('unknown',v[3]>0);
put(tr.querySelector('[data-kind=spent]'),v[0],c);put(tr.querySelector('[data-kind=held]'),v[1],c);
tr.querySelector('[data-kind=payments]').textContent=v[2]+(v[3]?' ('+v[3]+' unknown)':'');
var m=max[c]||1n;tr.querySelector('.bar.spent').style.width=(Number(v[0]*1000n/m)/1000*200)+'px';
tr.querySelector('.bar.held').style.width=(Number(v[1]*1000n/m)/1000*200)+'px';});});
var shown=document.getElementById('f-shown');
shown.textContent=(origin||'all origins')+', '+from+' to '+to;
document.body.setAttribute('data-filtered',origin||from!==data.days[0]||to!==data.days[data.days.length-1]?'yes':'no');}
form.addEventListener('change',function(){
var p=[];if(o.value)p.push('origin='+encodeURIComponent(o.value));
if(a.value)p.push('from='+a.value);if(b.value)p.push('to='+b.value);
history.replaceState(null,'','#'+p.join('&'));apply();});
form.addEventListener('submit',function(ev){ev.preventDefault();});
readHash();apply();
window.addEventListener('hashchange',function(){readHash();apply();});
})();
"""

# The page's one script, allowed by its hash: a script element that got into the page any
# other way (an escaping mistake) is not run. Styles stay inline (the bars' widths are style
# attributes); a style cannot run code or, under default-src 'none', load anything.
_SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
#: From this share of a cap on, the cap is shown as nearly used up.
_NEARLY = Fraction(9, 10)


def _e(text: object) -> str:
    # Control and invisible characters (an ESC, a bidi override) are shown as escapes first,
    # as in the terminal; then the markup characters are escaped.
    return escape(printable(text), quote=True)


def _money(amount: int, currency: Currency) -> str:
    return format_money(Money(amount, currency))


def _px(value: Fraction) -> str:
    # Drawing geometry from exact amounts: rounded only here, to a tenth of a pixel.
    return f"{round(value * 10) / 10:.1f}"


def _script_json(data: Any) -> str:
    # Inside <script>, "</script>" or "<!--" in a string would end or confuse the element:
    # these characters are written as JSON escapes, which JSON.parse reads back as they were.
    text = json.dumps(data, ensure_ascii=True, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _chart(report: Report, index: int, currency: Currency) -> str:
    days = report.daily[currency]
    scale = max((d.spent + d.held for d in days), default=0)
    step = (_CHART_W - _PAD) / len(days)
    width = max(step * 0.7, 1.0)
    base = _CHART_H - 18
    height = _CHART_H - 36
    parts = [
        f'<svg role="img" width="{_CHART_W}" height="{_CHART_H}" '
        f'viewBox="0 0 {_CHART_W} {_CHART_H}" data-chart="c{index}" '
        f'aria-label="spend per day in {_e(currency)}">',
        f'<line x1="{_PAD}" y1="{base}" x2="{_CHART_W}" y2="{base}" stroke="#c5ccd6"/>',
        f'<text x="0" y="12" data-scale="c{index}">{_e(_money(scale, currency))}</text>',
    ]
    for n, day in enumerate(days):
        x = _PAD + n * step
        spent_h = Fraction(height * day.spent, scale) if scale else Fraction(0)
        held_h = Fraction(height * day.held, scale) if scale else Fraction(0)
        title = _e(
            f"{day.day}: {_money(day.spent, currency)} spent"
            + (f", {_money(day.held, currency)} held" if day.held else "")
        )
        for kind, y, h, color, amount in (
            ("spent", base - spent_h, spent_h, "#3b6fd8", day.spent),
            ("held", base - spent_h - held_h, held_h, "#e3a008", day.held),
        ):
            parts.append(
                f'<rect x="{x:.1f}" y="{_px(y)}" width="{width:.1f}" height="{_px(h)}" '
                f'fill="{color}" data-day="{day.day}" data-currency="c{index}" '
                f'data-kind="{kind}" data-base="{amount}"><title>{title}</title></rect>'
            )
        if n % 5 == 0 or n == len(days) - 1:
            parts.append(f'<text x="{x:.1f}" y="{_CHART_H - 4}">{day.day:%m-%d}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _group_table(
    title: str, kind: str, rows: Sequence[GroupRow], index: dict[Currency, int]
) -> str:
    out = [f"<h2>{_e(title)}</h2>"]
    if not rows:
        return out[0] + "<p>no payments</p>"
    largest: dict[Currency, int] = {}
    for r in rows:
        largest[r.currency] = max(largest.get(r.currency, 0), r.total)
    out.append(
        f'<table data-table="{kind}"><thead><tr><th>{kind}</th><th>spent</th><th>held</th>'
        "<th>payments</th><th></th></tr></thead><tbody>"
    )
    for r in rows:
        c = index[r.currency]
        scale = largest[r.currency] or 1
        unknown = f" ({r.unknown} unknown)" if r.unknown else ""
        out.append(
            f'<tr data-group="{kind}" data-key="{_e(r.key)}" data-currency="c{c}"'
            + (' class="unknown"' if r.unknown else "")
            + f"><td>{_e(r.key)}</td>"
            f'<td class="num" data-kind="spent" data-base="{r.spent}">'
            f"{_e(_money(r.spent, r.currency))}</td>"
            f'<td class="num" data-kind="held" data-base="{r.held}">'
            f"{_e(_money(r.held, r.currency))}</td>"
            f'<td class="num" data-kind="payments">{r.payments}{unknown}</td>'
            f'<td class="track"><span class="bar spent" '
            f'style="width:{_px(Fraction(200 * r.spent, scale))}px"></span>'
            f'<span class="bar held" style="width:{_px(Fraction(200 * r.held, scale))}px">'
            "</span></td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _caps(report: Report) -> str:
    out = ["<h2>Caps <small>(as the journal stands now; not filtered)</small></h2>"]
    if not report.caps:
        return out[0] + "<p>no limits: every payment is refused (require_limit)</p>"
    out.append(
        '<table data-table="caps"><thead><tr><th>rule</th><th>per</th><th>cap</th><th>used</th>'
        "<th>left</th><th>scope</th><th></th></tr></thead><tbody>"
    )
    for cap in report.caps:
        share = cap.share
        over = share is not None and share >= _NEARLY
        bar = (
            ""
            if share is None
            else f'<span class="bar{" held" if over else ""}" '
            f'style="width:{_px(200 * min(share, Fraction(1)))}px"></span> {_e(cap.percent)}'
        )
        scope = ", ".join(f"{k}={v}" for k, v in cap.scope.items()) or "all"
        used = "-" if cap.used is None else format_money(cap.used)
        left = "-" if cap.left is None else format_money(cap.left)
        used_base = "" if cap.used is None else cap.used.amount
        left_base = "" if cap.left is None else cap.left.amount
        out.append(
            f'<tr data-cap="{_e(cap.rule)}"' + (' class="over"' if over else "") + ">"
            f"<td>{_e(cap.rule)}</td><td>{_e(cap.per)}</td>"
            f'<td class="num" data-base="{cap.cap.amount}">{_e(format_money(cap.cap))}</td>'
            f'<td class="num" data-kind="used" data-base="{used_base}">{_e(used)}</td>'
            f'<td class="num" data-kind="left" data-base="{left_base}">{_e(left)}</td>'
            f'<td>{_e(scope)}</td><td class="track">{bar}</td></tr>'
        )
    out.append("</tbody></table>")
    return "".join(out)


def _attention(report: Report) -> str:
    if not report.attention:
        return ""
    unknown = len(report.unknown)
    out = [
        '<section class="attention" id="attention"><h2>'
        f"{len(report.attention)} payment(s) not final"
        + (f", {unknown} with an unknown outcome" if unknown else "")
        + "</h2><p>Their amounts stay held against your budgets. Run <code>mpp journal "
        "reconcile</code>; when you know the outcome, <code>mpp journal resolve ID "
        "settled|failed --note TEXT</code>.</p>",
        '<table data-table="attention"><thead><tr><th>id</th><th>created</th><th>state</th>'
        "<th>amount</th><th>origin</th><th>reason</th></tr></thead><tbody>",
    ]
    for e in report.attention:
        css = "unknown" if e.state == "unknown" else "inflight"
        out.append(
            f'<tr class="{css}" data-entry="{_e(e.id)}"><td>{_e(e.id[:12])}</td>'
            f"<td>{e.created:%Y-%m-%d %H:%M}</td><td>{_e(e.state)}</td>"
            f'<td class="num" data-base="{e.amount.amount}">{_e(format_money(e.amount))}</td>'
            f"<td>{_e(e.origin)}</td><td>{_e(e.reason or '')}</td></tr>"
        )
    out.append("</tbody></table></section>")
    return "".join(out)


def _data(report: Report, index: dict[Currency, int]) -> dict[str, Any]:
    return {
        "days": [str(d) for d in report.days],
        "chart": {"height": _CHART_H - 36, "base": _CHART_H - 18},
        "currencies": {
            f"c{n}": {"code": c.code, "decimals": c.decimals, "label": str(c)}
            for c, n in index.items()
        },
        "entries": [
            {
                "id": e.id,
                "day": str(e.day),
                # As the markup shows them (data-key, the origin options): the filter compares
                # these strings with those, so an origin with a control character in it is
                # filtered like any other.
                "origin": printable(e.origin),
                "method": printable(e.method),
                "state": e.state,
                "status": e.status,
                "amount": str(e.amount.amount),
                "currency": f"c{index[e.amount.currency]}",
            }
            for e in report.entries
        ],
    }


def render_html(report: Report) -> str:
    """The report as one HTML document (UTF-8), needing nothing from the network."""
    index = {c: n for n, c in enumerate(report.currencies)}
    first, last = report.days[0], report.days[-1]
    origins = sorted({e.origin for e in report.entries})
    options = "".join(f'<option value="{_e(o)}">{_e(o)}</option>' for o in origins)
    cards = (
        "".join(
            f'<div class="card">{_e(c)} spent<b data-total="spent" data-currency="c{n}" '
            f'data-base="{t.spent}">{_e(_money(t.spent, c))}</b>held <span data-total="held" '
            f'data-currency="c{n}" data-base="{t.held}">{_e(_money(t.held, c))}</span></div>'
            for c, n in index.items()
            for t in (report.totals[c],)
        )
        or "<p>no payments in these days</p>"
    )
    charts = "".join(f"<h3>{_e(c)}</h3>{_chart(report, n, c)}" for c, n in index.items())
    body = (
        f"<h1>Spend from {first} to {last}</h1>"
        f'<p class="meta">{len(report.days)} days; times in {_e(report.timezone)}; generated '
        f"{report.generated_at:%Y-%m-%d %H:%M}; amounts are what the payees were paid (fees not "
        "included).</p>"
        + _attention(report)
        + '<form id="filter"><label>origin<select id="f-origin"><option value="">all origins'
        f"</option>{options}</select></label>"
        f'<label>from<input type="date" id="f-from" min="{first}" max="{last}"></label>'
        f'<label>to<input type="date" id="f-to" min="{first}" max="{last}"></label>'
        '<span>showing: <b id="f-shown">all origins, '
        f"{first} to {last}</b></span></form>"
        f'<h2>Totals</h2><div class="totals">{cards}</div>'
        '<h2>Per day <small><span class="bar spent"></span> spent '
        '<span class="bar held"></span> held (not final)</small></h2>'
        f"{charts or '<p>no payments in these days</p>'}"
        + _group_table("Per origin", "origin", report.origins, index)
        + _group_table("Per method", "method", report.methods, index)
        + _caps(report)
    )
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src '{_SCRIPT_HASH}'; base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>mpp spend report {first} to {last}</title><style>{_STYLE}</style></head>"
        f'<body data-filtered="no">{body}'
        f'<script type="application/json" id="mpp-data">{_script_json(_data(report, index))}'
        f"</script><script>{_SCRIPT}</script></body></html>\n"
    )
