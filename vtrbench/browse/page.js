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
// footnote marks of short names ("CAMoE^a", report's plain text): the mark becomes a <sup>, as text
const MARKS=(D.marks||[]).slice().sort((x,y)=>y[0].length-x[0].length);
const SUPS={a:'ᵃ',b:'ᵇ',c:'ᶜ',d:'ᵈ',e:'ᵉ',f:'ᶠ',g:'ᵍ',h:'ʰ',i:'ⁱ',j:'ʲ',k:'ᵏ',l:'ˡ',m:'ᵐ',n:'ⁿ',o:'ᵒ',p:'ᵖ',
  r:'ʳ',s:'ˢ',t:'ᵗ',u:'ᵘ',v:'ᵛ',w:'ʷ',x:'ˣ',y:'ʸ',z:'ᶻ'};
function rich(text){const out=[];let rest=String(text);
  while(rest){let at=-1,m=null;
    for(const mk of MARKS){const i=rest.indexOf(mk[0]);if(i>=0&&(at<0||i<at)){at=i;m=mk}}
    if(!m){out.push(rest);break}
    if(at>0)out.push(rest.slice(0,at));out.push(m[1],el('sup',{class:'mark'},m[2]));rest=rest.slice(at+m[0].length)}
  return out}
// <option> holds text only: the mark as a Unicode superscript letter
function plain(text){return rich(text).map(n=>typeof n==='string'?n:(SUPS[n.textContent]||'('+n.textContent+')')).join('')}
// a footnote line "a: CAMoE with ..." starts with its mark
function noteLine(text){const m=/^([a-z]): ([\s\S]*)$/.exec(text);
  return m?[el('sup',{class:'mark'},m[1]),' ',...rich(m[2])]:rich(text)}
// the Δ cell "+1.2 [-0.3, +2.5]": the interval may go to a second line, never split inside
function diffCell(text){const i=text.indexOf(' [');
  return i<0?[text]:[text.slice(0,i),' ',el('span',{class:'ci'},text.slice(i+1))]}
function thumb(v){const t=D.thumbs[v];const id=D.videos[v];
  return t?el('img',{class:'strip',src:'data:image/jpeg;base64,'+t,alt:id,title:id}):el('span',{class:'ph',title:id},id)}
function renderTables(){const root=$('tables');
  D.tables.forEach((t,ti)=>{root.append(el('h3',{},t.title));
    const tb=el('table',{class:'abl','data-i':ti});const wrap=el('div',{class:'wrap'});const tr=el('tr');
    const dj=t.diff?t.columns.length-1:-1;
    t.columns.forEach((c,j)=>{const th=el('th',{class:j<t.left?'l':(j===dj?'d':'')},...rich(c));th.onclick=()=>sortTable(tb,j);tr.append(th)});
    tb.append(el('thead',{},tr));const body=el('tbody');
    t.rows.forEach((r,i)=>{const row=el('tr');r.forEach((c,j)=>row.append(el('td',{class:(j<t.left?'l':(j===dj?'d':''))+((t.bold[i]||[]).includes(j)?' b':'')},
      ...(j===dj?diffCell(String(c)):rich(c)))));body.append(row)});
    tb.append(body);wrap.append(tb);root.append(wrap)})}
function sortTable(tb,j){const th=tb.tHead.rows[0].cells[j];const dir=th.dataset.dir==='desc'?'asc':'desc';
  for(const c of tb.tHead.rows[0].cells)delete c.dataset.dir;th.dataset.dir=dir;
  const rows=[...tb.tBodies[0].rows];const s=dir==='asc'?1:-1;
  rows.sort((a,b)=>{const x=num(a.cells[j].textContent),y=num(b.cells[j].textContent);
    if(isNaN(x)&&isNaN(y))return a.cells[j].textContent.localeCompare(b.cells[j].textContent)*s;
    if(isNaN(x))return 1;if(isNaN(y))return -1;return (x-y)*s});
  rows.forEach(r=>tb.tBodies[0].append(r))}
function sysById(id){return D.systems.find(s=>s.id===id)}
function gateLine(s,q){if(!s.gate)return null;const g=el('div',{class:'gate'},...rich(s.name),' gate: ');
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
// the card of a video query (v2t) for the systems shown (one, or A and B)
function cardV(v,syss){const c=el('div',{class:'card'});
  c.append(el('div',{class:'cap'},'video ',D.videos[v]));
  const meta=el('div',{class:'meta'},'rank of its best caption');
  syss.forEach((s,i)=>meta.append(i?' · ':' ',...rich(s.name),': ',rankText(s,v,true)));c.append(meta);
  c.append(thumb(v));
  c.append(el('div',{class:'meta'},'its captions: '+capsOf(v).map(q=>D.captions[q]).join(' | ')));
  for(const s of syss){c.append(el('div',{class:'sys'},...rich(s.name),(s.topk_v2t?' top-'+s.topk_v2t[v].length+' (seed '+s.topk_seed+')':'')+':'));
    c.append(topLineV(s,v))}
  return c}
// a rank with the number of wrong items tied with the ground truth (lowest seed), when there are any
function rankText(s,q,v2t){const r=String((v2t?s.ranks_v2t:s.ranks)[q]),t=v2t?s.tied_v2t:s.tied;
  return t&&t[q]>0?r+' (seed '+s.topk_seed+': tied with '+t[q]+')':r}
function card(q,syss){const c=el('div',{class:'card'});
  c.append(el('div',{class:'cap'},D.captions[q]));
  const meta=el('div',{class:'meta'},'ground truth ',D.videos[D.gt[q]],' · rank');
  syss.forEach((s,i)=>meta.append(i?' · ':' ',...rich(s.name),': ',rankText(s,q,false)));
  meta.append(' · verb stream: ',D.verb[q]);c.append(meta);
  c.append(thumb(D.gt[q]));
  for(const s of syss){c.append(el('div',{class:'sys'},...rich(s.name),(s.topk?' top-'+s.topk[q].length+' (seed '+s.topk_seed+')':'')+':'));c.append(topLine(s,q));
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
  const make=v2t?cardV:card,what=v2t?' video queries':' queries';
  // one system (or A = B): its own misses, worst first, and the queries it ranks first; no "X vs X"
  if(A===B){const r=v2t?A.ranks_v2t:A.ranks;
    const miss=qs.filter(q=>r[q]>1).sort((x,y)=>r[y]-r[x]||x-y),hit=qs.filter(q=>r[q]<=1);
    $('summary').replaceChildren(qs.length+what+' match; ',...rich(A.name),' ranks the ground truth first on '+hit.length+
      (hit.length===qs.length?'.':', lower on '+miss.length+'.'));
    for(const[id,list,head]of[['winA',miss,' misses, worst first'],['winB',hit,' ranks first']]){
      $(id).replaceChildren(el('h3',{},...rich(A.name),head+' ('+list.length+')'));list.slice(0,n).forEach(q=>$(id).append(make(q,[A])))}
    return}
  const rA=v2t?A.ranks_v2t:A.ranks,rB=v2t?B.ranks_v2t:B.ranks;
  const d=q=>rB[q]-rA[q];
  const winA=qs.filter(q=>d(q)>0).sort((x,y)=>d(y)-d(x)||x-y),winB=qs.filter(q=>d(q)<0).sort((x,y)=>d(x)-d(y)||x-y);
  $('summary').replaceChildren(qs.length+what+' match; ',...rich(A.name),' ranks better on '+winA.length+', ',...rich(B.name),' on '+
    winB.length+', equal on '+(qs.length-winA.length-winB.length)+'.');
  for(const[id,list,w,l]of[['winA',winA,A,B],['winB',winB,B,A]]){const box=$(id);box.replaceChildren(
    el('h3',{},...rich(w.name),' beats ',...rich(l.name),' most ('+list.length+')'));list.slice(0,n).forEach(q=>box.append(make(q,[A,B])))}}
function renderGates(){const root=$('gates');if(!root)return;  // no gated system: page.py leaves the section out
  for(const g of D.gate_summary){root.append(el('h3',{},...rich(g.system)));const t=el('table');
    const h=el('tr',{},el('th',{class:'l'},'kind of query'),el('th',{},'n'));
    g.experts.forEach(e=>h.append(el('th',{},e+' top / mean')));t.append(el('thead',{},h));
    const b=el('tbody');for(const r of g.rows){const tr=el('tr',{},el('td',{class:'l'},r.kind),el('td',{},String(r.n)));
      g.experts.forEach(e=>tr.append(el('td',{},r.top[e]+' / '+r.mean[e].toFixed(3))));b.append(tr)}
    t.append(b);root.append(t)}}
// ---- training curves: the result files' per-epoch history as inline SVG (nothing fetched, no library)
const PALETTE=['#1f77b4','#d62728','#2ca02c','#9467bd','#ff7f0e','#17becf','#8c564b','#e377c2','#7f7f7f','#bcbd22'];
const SVGNS='http://www.w3.org/2000/svg',CW=296,CH=200,CM={l:62,r:10,t:22,b:30};
const PANELS=[['loss','training loss (epoch mean)'],['lr','learning rate (last step of the epoch)'],
  ['logit_scale','logit scale'],['val','validation']];
const OBJECTIVE='objective';
function sv(tag,attrs,...kids){const e=document.createElementNS(SVGNS,tag);
  for(const[k,v]of Object.entries(attrs||{}))e.setAttribute(k,v);for(const k of kids)e.append(k);return e}
// a finite number or null: what the page draws (a gap for anything else)
function fin(x){return typeof x==='number'&&isFinite(x)?x:null}
function fmtAxis(x){const a=Math.abs(x);return a!==0&&(a<1e-3||a>=1e5)?x.toExponential(2):String(+x.toPrecision(4))}
// [lo, hi] -> [a, b] without overflow: halves first, so lo = -1e308 and hi = 1e308 still give a finite span
function scaler(lo,hi,a,b){const span=hi/2-lo/2;return v=>span>0?a+(v/2-lo/2)/span*(b-a):(a+b)/2}
// min and max by a loop: Math.min(...a) passes every value as an argument, which can overflow the stack
function extent(a){let lo=Infinity,hi=-Infinity;for(const v of a){if(v<lo)lo=v;if(v>hi)hi=v}return[lo,hi]}
function curveSystems(){return D.systems.filter(s=>s.history&&s.history.length)}
function valKeys(){const k=new Set();for(const s of curveSystems())for(const r of s.history)for(const n of Object.keys(r.val||{}))k.add(n);
  const keys=[...k].sort();if(k.has('t2v/R@1')&&k.has('v2t/R@1'))keys.unshift(OBJECTIVE);return keys}
function seriesOf(run,panel,vk){if(panel!=='val')return run[panel]||null;const v=run.val;if(!v)return null;
  if(vk!==OBJECTIVE)return v[vk]||null;const a=v['t2v/R@1'],b=v['v2t/R@1'];if(!a||!b)return null;
  return a.map((x,i)=>fin(x)!==null&&fin(b[i])!==null?fin(x+b[i]):null)}
function panel(key,title,vk){const lines=[];
  curveSystems().forEach((s,si)=>{for(const run of s.history){const ys=seriesOf(run,key,vk);
    if(ys&&ys.some(y=>fin(y)!==null))lines.push({s,color:PALETTE[si%PALETTE.length],run,ys})}});
  if(!lines.length)return null;
  const xs=lines.flatMap(l=>l.run.epoch.filter(e=>fin(e)!==null)),ys=lines.flatMap(l=>l.ys.filter(y=>fin(y)!==null));
  const[x0,x1]=extent(xs),[y0,y1]=extent(ys);
  const X=scaler(x0,x1,CM.l,CW-CM.r),Y=scaler(y0,y1,CH-CM.b,CM.t);
  const svg=sv('svg',{class:'curve','data-panel':key,viewBox:`0 0 ${CW} ${CH}`,width:CW,height:CH,role:'img'});
  svg.append(sv('text',{x:CM.l,y:14,class:'ct'},key==='val'?title+': '+(vk===OBJECTIVE?'t2v + v2t R@1 (objective)':vk):title));
  svg.append(sv('rect',{x:CM.l,y:CM.t,width:CW-CM.l-CM.r,height:CH-CM.t-CM.b,class:'frame'}));
  for(const v of y0===y1?[y0]:[y0,y1/2+y0/2,y1])svg.append(sv('text',{x:CM.l-4,y:Y(v)+4,class:'ay'},fmtAxis(v)));
  for(const v of x0===x1?[x0]:[x0,x1])svg.append(sv('text',{x:X(v),y:CH-CM.b+14,class:'ax'},String(v)));
  svg.append(sv('text',{x:(CM.l+CW-CM.r)/2,y:CH-4,class:'ax'},'epoch'));
  for(const l of lines){const g=sv('g',{class:'series','data-system':l.s.id,'data-seed':String(l.run.seed)});
    g.append(sv('title',{},plain(l.s.name)+', seed '+l.run.seed));
    // a gap (a value that is not a finite number) splits the line; a lone point is a dot
    let seg=[];const flush=()=>{if(seg.length>1)g.append(sv('polyline',{points:seg.join(' '),stroke:l.color}));
      else if(seg.length===1){const[cx,cy]=seg[0].split(',');g.append(sv('circle',{cx,cy,r:2.5,fill:l.color}))}seg=[]};
    l.ys.forEach((y,i)=>{const e=fin(l.run.epoch[i]);if(fin(y)===null||e===null){flush();return}
      seg.push(X(e).toFixed(2)+','+Y(y).toFixed(2))});
    flush();svg.append(g)}
  return svg}
function renderCurves(){const root=$('curves');if(!root)return;  // no history: page.py leaves the section out
  const sel=$('valkey'),keys=valKeys();
  if(!sel.options.length){for(const k of keys)sel.append(el('option',{value:k},k===OBJECTIVE?'t2v R@1 + v2t R@1 (tune objective)':k));
    sel.onchange=renderCurves;sel.parentNode.hidden=!keys.length}
  const box=el('div',{class:'panels'});
  for(const[key,title]of PANELS){const p=panel(key,title,sel.value);if(p)box.append(p)}
  const legend=el('div',{class:'legend'});
  curveSystems().forEach((s,si)=>legend.append(el('span',{},el('i',{style:'background:'+PALETTE[si%PALETTE.length]}),
    ...rich(s.name),' (seed'+(s.history.length>1?'s ':' ')+s.history.map(r=>r.seed).join(', ')+')')));
  root.replaceChildren(legend,box)}
function init(){document.title=D.title;$('title').textContent=D.title;
  $('prov').textContent=D.provenance.join(' · ');
  for(const n of D.notes)$('notes').append(el('li',{},...noteLine(n)));
  renderTables();renderCurves();
  for(const id of['sysA','sysB'])for(const s of D.systems)$(id).append(el('option',{value:s.id},plain(s.name)));
  $('sysA').value=D.a;$('sysB').value=D.b;$('labB').hidden=D.systems.length<2;
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
  // footnote marks as <sup>, never a literal "^a"; tables scroll inside their box or fit, never clip
  out.caret=/\^[a-z]\b/.test(document.body.innerText);out.sups=document.querySelectorAll('#tables sup.mark,#notes sup.mark').length;
  out.window_width=innerWidth;
  out.wraps=[...document.querySelectorAll('#tables .wrap')].map(w=>({scroll:w.scrollWidth,client:w.clientWidth,
    overflow:getComputedStyle(w).overflowX}));
  out.sections=[...document.querySelectorAll('section')].map(x=>x.id);
  out.single=$('sysA').value===$('sysB').value;out.sysB_hidden=$('labB').hidden;
  out.headings=[...document.querySelectorAll('#winA h3,#winB h3')].map(h=>h.textContent);out.summary=$('summary').textContent;
  out.gate_lines=document.querySelectorAll('#winA .gate,#winB .gate').length;
  const curvesOf=()=>{const ps=[...document.querySelectorAll('svg.curve')];const count=sel=>Object.fromEntries(ps.map(p=>[p.dataset.panel,p.querySelectorAll(sel).length]));
    const pts=ps.flatMap(p=>[...p.querySelectorAll('polyline')].flatMap(l=>l.getAttribute('points').split(' ').map(xy=>xy.split(',').map(Number)))
      .concat([...p.querySelectorAll('circle')].map(c=>[+c.getAttribute('cx'),+c.getAttribute('cy')])));
    return {panels:ps.map(p=>p.dataset.panel),series:count('g.series'),polylines:count('polyline'),dots:count('circle'),
      points:pts.length,points_inside:pts.every(([x,y])=>isFinite(x)&&isFinite(y)&&x>=0&&x<=CW&&y>=0&&y<=CH),
      colors:ps.length?new Set([...ps[0].querySelectorAll('polyline,circle')].map(l=>l.getAttribute('stroke')||l.getAttribute('fill'))).size:0}};
  out.curves=curvesOf();out.val_keys=valKeys();out.curves_by_val={};
  if($('valkey'))for(const k of out.val_keys){$('valkey').value=k;renderCurves();out.curves_by_val[k]=curvesOf().polylines.val||0}
  out.figure=!!document.querySelector('#figures svg');out.errors=ERR;out.csp_violations=CSPV;out.ms=Math.round(performance.now()-t0);
  out.load_ms=Math.round(performance.now());
  $('selftest').textContent=JSON.stringify(out)}
try{init();
  // real (not virtual) time when the page opens without --virtual-time-budget: benchmarks/browse_scale.py
  document.body.dataset.initMs=Math.round(performance.now());
  const t=performance.now();$('filter').value='a';drill();$('filter').value='';drill();
  document.body.dataset.drillMs=Math.round((performance.now()-t)/2)}catch(e){ERR.push('init: '+e)}
if(location.hash.includes('selftest'))selftest().catch(e=>{ERR.push('selftest: '+e);$('selftest').textContent=JSON.stringify({errors:ERR})});
