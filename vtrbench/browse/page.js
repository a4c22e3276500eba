// vtrbench browse: the page's script (inlined into index.html by page.py)
const ERR=[],CSPV=[];
window.addEventListener('error',e=>ERR.push(String(e.message||e)));
window.addEventListener('unhandledrejection',e=>ERR.push('unhandled: '+String(e.reason)));
document.addEventListener('securitypolicyviolation',e=>CSPV.push(e.blockedURI+' '+e.violatedDirective));
const _ce=console.error;console.error=(...a)=>{ERR.push(a.join(' '));_ce(...a)};
const D=JSON.parse(document.getElementById('data').textContent);
const $=id=>document.getElementById(id);
function el(tag,attrs,...kids){const e=document.createElement(tag);
  for(const[k,v]of Object.entries(attrs||{})){if(k==='class')e.className=v;else e.setAttribute(k,v)}
  for(const k of kids)e.append(k);return e}
function num(t){const m=String(t).replace('−','-').match(/^[^\d\-+]*([-+]?\d+(\.\d+)?)/);return m?parseFloat(m[1]):NaN}
function thumb(v){const t=D.thumbs[v];const id=D.videos[v];
  return t?el('img',{class:'strip',src:'data:image/jpeg;base64,'+t,alt:id,title:id}):el('span',{class:'ph',title:id},id)}
function renderTables(){const root=$('tables');
  D.tables.forEach((t,ti)=>{root.append(el('h3',{},t.title));
    const tb=el('table',{class:'abl','data-i':ti});const wrap=el('div',{class:'wrap'});const tr=el('tr');
    t.columns.forEach((c,j)=>{const th=el('th',{class:j<t.left?'l':''},c);th.onclick=()=>sortTable(tb,j);tr.append(th)});
    tb.append(el('thead',{},tr));const body=el('tbody');
    t.rows.forEach((r,i)=>{const row=el('tr');r.forEach((c,j)=>row.append(el('td',{class:(j<t.left?'l':'')+((t.bold[i]||[]).includes(j)?' b':'')},c)));body.append(row)});
    tb.append(body);wrap.append(tb);root.append(wrap)})}
function sortTable(tb,j){const th=tb.tHead.rows[0].cells[j];const dir=th.dataset.dir==='desc'?'asc':'desc';
  for(const c of tb.tHead.rows[0].cells)delete c.dataset.dir;th.dataset.dir=dir;
  const rows=[...tb.tBodies[0].rows];const s=dir==='asc'?1:-1;
  rows.sort((a,b)=>{const x=num(a.cells[j].textContent),y=num(b.cells[j].textContent);
    if(isNaN(x)&&isNaN(y))return a.cells[j].textContent.localeCompare(b.cells[j].textContent)*s;
    if(isNaN(x))return 1;if(isNaN(y))return -1;return (x-y)*s});
  rows.forEach(r=>tb.tBodies[0].append(r))}
function sysById(id){return D.systems.find(s=>s.id===id)}
function gateLine(s,q){if(!s.gate)return null;const g=el('div',{class:'gate'},s.name+' gate: ');
  for(const[e,w]of Object.entries(s.gate))g.append(el('span',{},e+' '+w[q].toFixed(2)));return g}
// score under each item; '=' marks a stored score equal to the one before it (a tie shown as one),
// 'tie' an item whose stored score equals the ground truth's
function scoreText(row,i){const x=row[i];return (i>0&&x===row[i-1]?'= ':'')+Number(x).toPrecision(4)}
const NO_TOPK='(no top-k in these result files: schema 1)';
function topLine(s,q){const box=el('div',{class:'top'});
  if(!s.topk){box.append(el('span',{class:'note'},NO_TOPK));return box}
  const g=s.topk[q].indexOf(D.gt[q]),gs=s.scores&&g>=0?s.scores[q][g]:null;
  s.topk[q].forEach((v,i)=>{const tie=gs!==null&&v!==D.gt[q]&&s.scores[q][i]===gs;
    const item=el('div',{class:v===D.gt[q]?'gt':(tie?'tie':'')},thumb(v),el('br'),(i+1)+'. '+D.videos[v]);
    if(s.scores)item.append(el('br'),el('span',{class:'score',title:'score ('+D.post+')'},scoreText(s.scores[q],i)));
    box.append(item)});
  return box}
// v2t: a video's captions (the correct items of a video query)
function capsOf(v){if(!D._caps){D._caps=D.videos.map(()=>[]);D.gt.forEach((w,q)=>D._caps[w].push(q))}return D._caps[v]}
function short(t){return t.length>90?t.slice(0,89)+'…':t}
function topLineV(s,v){const box=el('ol',{class:'topv'});
  if(!s.topk_v2t){box.append(el('li',{class:'note'},NO_TOPK));return box}
  const row=s.topk_v2t[v],sc=s.scores_v2t?s.scores_v2t[v]:null;
  const gs=sc?row.map((c,i)=>D.gt[c]===v?sc[i]:null).filter(x=>x!==null):[];
  row.forEach((c,i)=>{const own=D.gt[c]===v,tie=!own&&sc!==null&&gs.includes(sc[i]);
    const item=el('li',{class:own?'gt':(tie?'tie':'')},short(D.captions[c]));
    if(sc)item.append(' ',el('span',{class:'score',title:'score ('+D.post+')'},scoreText(sc,i)));
    box.append(item)});
  return box}
function cardV(v,A,B){const c=el('div',{class:'card'});
  c.append(el('div',{class:'cap'},'video ',D.videos[v]));
  c.append(el('div',{class:'meta'},'rank of its best caption ',A.name,': ',rankText(A,v,true),' · ',B.name,': ',
    rankText(B,v,true)));
  c.append(thumb(v));
  c.append(el('div',{class:'meta'},'its captions: '+capsOf(v).map(q=>D.captions[q]).join(' | ')));
  for(const s of[A,B]){c.append(el('div',{class:'sys'},s.name+(s.topk_v2t?' top-'+s.topk_v2t[v].length+' (seed '+s.topk_seed+')':'')+':'));
    c.append(topLineV(s,v))}
  return c}
// a rank with the number of wrong items tied with the ground truth (lowest seed), when there are any
function rankText(s,q,v2t){const r=String((v2t?s.ranks_v2t:s.ranks)[q]),t=v2t?s.tied_v2t:s.tied;
  return t&&t[q]>0?r+' (seed '+s.topk_seed+': tied with '+t[q]+')':r}
function card(q,A,B){const c=el('div',{class:'card'});
  c.append(el('div',{class:'cap'},D.captions[q]));
  c.append(el('div',{class:'meta'},'ground truth ',D.videos[D.gt[q]],' · rank ',A.name,': ',rankText(A,q,false),
    ' · ',B.name,': ',rankText(B,q,false),' · verb stream: ',D.verb[q]));
  c.append(thumb(D.gt[q]));
  for(const s of[A,B]){c.append(el('div',{class:'sys'},s.name+(s.topk?' top-'+s.topk[q].length+' (seed '+s.topk_seed+')':'')+':'));c.append(topLine(s,q));
    const g=gateLine(s,q);if(g)c.append(g)}
  return c}
function drill(){const A=sysById($('sysA').value),B=sysById($('sysB').value),v2t=$('dir').value==='v2t';
  const f=$('filter').value.toLowerCase(),lo=+$('minlen').value||0,hi=+$('maxlen').value||1e9,vs=$('verb').value,
    n=+$('nshow').value||20;
  // a caption passes the filters; a video (v2t) passes when one of its captions does
  const ok=q=>{const c=D.captions[q];const w=c.split(/\s+/).length;
    return !(f&&!c.toLowerCase().includes(f))&&w>=lo&&w<=hi&&!(vs&&D.verb[q]!==vs)};
  const qs=[];const nq=v2t?D.videos.length:D.captions.length;
  for(let q=0;q<nq;q++)if(v2t?capsOf(q).some(ok):ok(q))qs.push(q);
  const rA=v2t?A.ranks_v2t:A.ranks,rB=v2t?B.ranks_v2t:B.ranks,make=v2t?cardV:card;
  const d=q=>rB[q]-rA[q];
  const winA=qs.filter(q=>d(q)>0).sort((x,y)=>d(y)-d(x)||x-y),winB=qs.filter(q=>d(q)<0).sort((x,y)=>d(x)-d(y)||x-y);
  $('summary').textContent=qs.length+(v2t?' video queries':' queries')+' match; '+A.name+' ranks better on '+winA.length+', '+B.name+' on '+
    winB.length+', equal on '+(qs.length-winA.length-winB.length)+'.';
  for(const[id,list,w,l]of[['winA',winA,A,B],['winB',winB,B,A]]){const box=$(id);box.replaceChildren(
    el('h3',{},w.name+' beats '+l.name+' most ('+list.length+')'));list.slice(0,n).forEach(q=>box.append(make(q,A,B)))}}
function renderGates(){const root=$('gates');if(!D.gate_summary.length){root.append(el('p',{class:'note'},
  'No result file here holds per-query gate weights (CAMoE results written by this version do).'));return}
  for(const g of D.gate_summary){root.append(el('h3',{},g.system));const t=el('table');
    const h=el('tr',{},el('th',{class:'l'},'kind of query'),el('th',{},'n'));
    g.experts.forEach(e=>h.append(el('th',{},e+' top / mean')));t.append(el('thead',{},h));
    const b=el('tbody');for(const r of g.rows){const tr=el('tr',{},el('td',{class:'l'},r.kind),el('td',{},String(r.n)));
      g.experts.forEach(e=>tr.append(el('td',{},r.top[e]+' / '+r.mean[e].toFixed(3))));b.append(tr)}
    t.append(b);root.append(t)}}
function init(){document.title=D.title;$('title').textContent=D.title;
  $('prov').textContent=D.provenance.join(' · ');
  for(const n of D.notes)$('notes').append(el('li',{},n));
  renderTables();
  for(const id of['sysA','sysB'])for(const s of D.systems)$(id).append(el('option',{value:s.id},s.name));
  $('sysA').value=D.a;$('sysB').value=D.b;
  for(const v of[...new Set(D.verb)].sort())$('verb').append(el('option',{value:v},v));
  for(const id of['sysA','sysB','verb','dir'])$(id).onchange=drill;
  if(/\bv2t\b/.test(location.hash))$('dir').value='v2t';  // index.html#v2t opens the v2t drill-down
  for(const id of['filter','minlen','maxlen','nshow'])$(id).oninput=drill;
  drill();renderGates()}
async function selftest(){const out={};const t0=performance.now();
  const tb=document.querySelector('table.abl');out.tables=document.querySelectorAll('table.abl').length;
  out.table_rows=tb?tb.tBodies[0].rows.length:0;
  if(tb){const j=[...tb.tHead.rows[0].cells].findIndex((c,i)=>i>=D.tables[0].left+1);
    const col=()=>[...tb.tBodies[0].rows].map(r=>num(r.cells[j].textContent)).filter(x=>!isNaN(x));
    sortTable(tb,j);const d=col();sortTable(tb,j);const a=col();
    out.sorted_desc=d.every((x,i)=>i===0||d[i-1]>=x);out.sorted_asc=a.every((x,i)=>i===0||a[i-1]<=x);
    out.sort_column=tb.tHead.rows[0].cells[j].textContent}
  out.scores_shown=document.querySelectorAll('#winA .score,#winB .score').length;
  out.tie_notes=[...document.querySelectorAll('#winA .meta,#winB .meta')].filter(m=>m.textContent.includes('tied with')).length;
  out.cards_a=$('winA').querySelectorAll('.card').length;out.cards_b=$('winB').querySelectorAll('.card').length;
  const imgs=[...document.images];await Promise.all(imgs.map(i=>i.decode().catch(()=>null)));
  out.images=imgs.length;out.images_decoded=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;
  out.images_not_data=imgs.filter(i=>!i.src.startsWith('data:')).length;
  $('filter').value=D.captions[0].split(' ').slice(-2).join(' ');drill();
  out.filter_text=$('filter').value;out.filter_cards=document.querySelectorAll('#winA .card,#winB .card').length;
  out.filter_ok=[...document.querySelectorAll('#winA .cap,#winB .cap')].every(c=>c.textContent.toLowerCase().includes(out.filter_text.toLowerCase()));
  $('filter').value='';drill();
  $('dir').value='v2t';drill();out.cards_v2t=document.querySelectorAll('#winA .card,#winB .card').length;
  out.scores_v2t=document.querySelectorAll('#winA .topv .score,#winB .topv .score').length;
  out.v2t_own_captions=document.querySelectorAll('#winA .topv li.gt,#winB .topv li.gt').length;
  $('dir').value='t2v';drill();
  out.figure=!!document.querySelector('#figures svg');out.errors=ERR;out.csp_violations=CSPV;out.ms=Math.round(performance.now()-t0);
  out.load_ms=Math.round(performance.now());
  $('selftest').textContent=JSON.stringify(out)}
try{init();
  // real (not virtual) time when the page opens without --virtual-time-budget: benchmarks/browse_scale.py
  document.body.dataset.initMs=Math.round(performance.now());
  const t=performance.now();$('filter').value='a';drill();$('filter').value='';drill();
  document.body.dataset.drillMs=Math.round((performance.now()-t)/2)}catch(e){ERR.push('init: '+e)}
if(location.hash.includes('selftest'))selftest().catch(e=>{ERR.push('selftest: '+e);$('selftest').textContent=JSON.stringify({errors:ERR})});
