/* Dangol web chat widget.
 * Paste on any page:
 *   <script src="https://YOUR-DANGOL/webchat/widget.js" data-title="Chat with us" async></script>
 * The visitor's signed id and any unacknowledged messages live in
 * localStorage, so a reload shows the whole history again and loses nothing;
 * a reconnect within the page asks only for what came after the last
 * message shown.  Messages are deduplicated by id on both sides.
 */
(function () {
  "use strict";
  if (window.DangolChat) return;
  var script = document.currentScript || document.querySelector('script[src*="/webchat/widget.js"]');
  var base = new URL(script ? script.src : location.href);
  var wsUrl = (base.protocol === "https:" ? "wss://" : "ws://") + base.host + "/webchat/ws";
  var title = (script && script.getAttribute("data-title")) || "Chat with us";
  var openAtStart = script && script.getAttribute("data-open") === "true";
  var store = {
    get: function (k, d) { try { var v = localStorage.getItem("dangol." + k); return v === null ? d : JSON.parse(v); } catch (e) { return d; } },
    set: function (k, v) { try { localStorage.setItem("dangol." + k, JSON.stringify(v)); } catch (e) {} }
  };
  var shown = {};
  var pending = store.get("pending", []);
  var ws = null, ready = false, retry = 0, after = null;

  var css = ".dgl-launch{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;background:#2a6df4;color:#fff;font-size:26px;cursor:pointer;box-shadow:0 4px 12px rgba(0,0,0,.2);z-index:2147483000}" +
    ".dgl-panel{position:fixed;right:20px;bottom:88px;width:340px;max-width:calc(100vw - 40px);height:480px;max-height:calc(100vh - 120px);background:#fff;border-radius:12px;box-shadow:0 8px 28px rgba(0,0,0,.25);display:none;flex-direction:column;font:14px/1.4 system-ui,-apple-system,'Segoe UI','Noto Sans KR',sans-serif;z-index:2147483000;overflow:hidden}" +
    ".dgl-panel.dgl-open{display:flex}.dgl-head{background:#2a6df4;color:#fff;padding:12px 14px;font-weight:600;display:flex;justify-content:space-between;align-items:center}" +
    ".dgl-status{font-size:11px;font-weight:400;opacity:.85}.dgl-log{flex:1;overflow-y:auto;padding:12px;background:#f6f7f9}" +
    ".dgl-who{font-size:11px;font-weight:600;color:#5b5ff5;margin-bottom:2px}" +
    ".dgl-msg{max-width:80%;margin:6px 0;padding:8px 11px;border-radius:14px;white-space:pre-wrap;word-wrap:break-word}" +
    ".dgl-in{margin-left:auto;background:#2a6df4;color:#fff;border-bottom-right-radius:4px}.dgl-out{background:#fff;color:#111;border:1px solid #e3e5e8;border-bottom-left-radius:4px}" +
    ".dgl-pending{opacity:.6}.dgl-buttons{margin:2px 0 8px}.dgl-buttons button{margin:3px 4px 0 0;padding:5px 10px;border:1px solid #2a6df4;border-radius:14px;background:#fff;color:#2a6df4;cursor:pointer}" +
    ".dgl-form{display:flex;border-top:1px solid #e3e5e8}.dgl-form input{flex:1;border:0;padding:12px;font:inherit;outline:none}.dgl-form button{border:0;background:#fff;color:#2a6df4;font-weight:600;padding:0 14px;cursor:pointer}";
  var style = document.createElement("style"); style.textContent = css; document.head.appendChild(style);

  var launch = el("button", "dgl-launch"); launch.type = "button"; launch.setAttribute("aria-label", title); launch.innerHTML = '<svg width="26" height="26" viewBox="0 0 24 24" fill="currentColor" aria-hidden="true"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/></svg>';
  var panel = el("div", "dgl-panel"); panel.setAttribute("role", "dialog"); panel.setAttribute("aria-label", title);
  var head = el("div", "dgl-head"); var htitle = el("span"); htitle.textContent = title;
  var status = el("span", "dgl-status"); status.textContent = "connecting\u2026";
  head.appendChild(htitle); head.appendChild(status);
  var log = el("div", "dgl-log"); log.setAttribute("aria-live", "polite");
  var form = el("form", "dgl-form"); var input = el("input"); input.placeholder = "Type a message\u2026"; input.setAttribute("aria-label", "Message");
  input.maxLength = 4096; var sendBtn = el("button"); sendBtn.type = "submit"; sendBtn.textContent = "Send";
  form.appendChild(input); form.appendChild(sendBtn);
  panel.appendChild(head); panel.appendChild(log); panel.appendChild(form);
  document.body.appendChild(panel); document.body.appendChild(launch);
  launch.addEventListener("click", function () { panel.classList.toggle("dgl-open"); if (panel.classList.contains("dgl-open")) input.focus(); });
  if (openAtStart) panel.classList.add("dgl-open");

  function el(tag, cls) { var e = document.createElement(tag); if (cls) e.className = cls; return e; }
  function uuid() { return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2)); }
  function scroll() { log.scrollTop = log.scrollHeight; }

  function render(m) {
    if (m.id && shown[m.id]) return;
    if (m.id) shown[m.id] = true;
    var node = m.client_id && log.querySelector('[data-client-id="' + m.client_id + '"]');
    if (!node) { node = el("div", "dgl-msg " + (m.direction === "in" ? "dgl-in" : "dgl-out")); log.appendChild(node); }
    node.textContent = m.text || "";
    if (m.sender && m.sender.name) { var who = el("div", "dgl-who"); who.textContent = m.sender.name; node.insertBefore(who, node.firstChild); }
    if (m.id) { node.setAttribute("data-id", m.id); node.classList.remove("dgl-pending"); }
    if (m.client_id) node.setAttribute("data-client-id", m.client_id);
    if (m.pending) node.classList.add("dgl-pending");
    if (m.direction === "out" && m.buttons && m.buttons.length) {
      var row = el("div", "dgl-buttons");
      m.buttons.forEach(function (b) {
        var btn = el("button"); btn.type = "button"; btn.textContent = b.title;
        btn.addEventListener("click", function () { submit({ type: "postback", payload: b.payload, title: b.title }); });
        row.appendChild(btn);
      });
      log.appendChild(row);
    }
    if (m.id && m.created_at !== undefined) after = m.id;
    scroll();
  }

  function transmit(frame) { if (ws && ready) ws.send(JSON.stringify(frame)); }

  function submit(frame) {
    frame.client_id = uuid();
    pending.push(frame); store.set("pending", pending);
    render({ client_id: frame.client_id, direction: "in", text: frame.title || frame.text || frame.payload, pending: true });
    transmit(frame);
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim(); if (!text) return;
    input.value = ""; submit({ type: "message", text: text });
  });

  function connect() {
    status.textContent = "connecting\u2026";
    ws = new WebSocket(wsUrl);
    ws.onopen = function () { retry = 0; ws.send(JSON.stringify({ type: "hello", visitor: store.get("visitor", null), after: after })); };
    ws.onmessage = function (ev) {
      var f; try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (f.type === "welcome") { store.set("visitor", f.visitor); }
      else if (f.type === "message") { render(f); }
      else if (f.type === "ready") { ready = true; status.textContent = "online"; pending.forEach(transmit); }
      else if (f.type === "ack") {
        pending = pending.filter(function (p) { return p.client_id !== f.client_id; }); store.set("pending", pending);
        var node = log.querySelector('[data-client-id="' + f.client_id + '"]');
        if (node) { node.classList.remove("dgl-pending"); if (f.id) { node.setAttribute("data-id", f.id); shown[f.id] = true; } }
        if (f.id) after = f.id;
      } else if (f.type === "error") {
        status.textContent = (f.error && f.error.message) || "error";
        if (f.client_id) { pending = pending.filter(function (p) { return p.client_id !== f.client_id; }); store.set("pending", pending); }
      }
    };
    ws.onclose = function () { ready = false; status.textContent = "reconnecting\u2026"; setTimeout(connect, Math.min(10000, 500 * Math.pow(2, retry++))); };
  }
  pending.forEach(function (p) { render({ client_id: p.client_id, direction: "in", text: p.title || p.text || p.payload, pending: true }); });
  connect();
  window.DangolChat = { open: function () { panel.classList.add("dgl-open"); }, send: function (t) { submit({ type: "message", text: t }); } };
})();
