// Dangol console: live updates over a websocket, canned-response picker, SLA countdowns.
// Events carry ids only; fresh HTML comes from the server, which escapes everything.
(function () {
  "use strict";
  var body = document.body;
  var page = body.getAttribute("data-page");
  var conversationId = body.getAttribute("data-conversation-id");
  var customerId = body.getAttribute("data-customer-id");

  function partial(name) {
    var url = new URL(window.location.href);
    url.searchParams.set("partial", name);
    url.hash = "";
    return fetch(url.toString(), { credentials: "same-origin", headers: { "X-Partial": "1" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); });
  }

  var timers = {};
  function soon(key, fn) {
    clearTimeout(timers[key]);
    timers[key] = setTimeout(fn, 120);
  }

  function refreshInbox() {
    partial("list").then(function (html) {
      document.getElementById("inbox-list").innerHTML = html;
      tickSla();
    }).catch(function () {});
  }

  function refreshMessages() {
    var box = document.getElementById("messages");
    var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    partial("messages").then(function (html) {
      box.innerHTML = html;
      if (atBottom) { box.scrollTop = box.scrollHeight; }
    }).catch(function () {});
  }

  function refreshHeader() {
    partial("header").then(function (html) {
      document.getElementById("conv-header").innerHTML = html;
      wireAutosubmit(document.getElementById("conv-header"));
      tickSla();
    }).catch(function () {});
  }

  function onEvent(event) {
    if (page === "inbox") {
      soon("inbox", refreshInbox);
    } else if (page === "conversation") {
      var mine = event.conversation_id === conversationId;
      if (event.type === "message" && (mine || event.customer_id === customerId)) {
        soon("messages", refreshMessages);
        soon("header", refreshHeader);
      } else if (event.type === "conversation" && mine) {
        soon("header", refreshHeader);
      }
    }
  }

  var status = document.getElementById("live-status");
  function setStatus(text, cls) {
    if (status) { status.textContent = text; status.className = "live-dot " + cls; }
    body.setAttribute("data-live", cls);
  }

  var delay = 500;
  function connect() {
    if (!page) { return; }
    var proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    var ws = new WebSocket(proto + "//" + window.location.host + "/console/live");
    ws.onopen = function () { delay = 500; setStatus("Live", "on"); };
    ws.onmessage = function (m) {
      var event;
      try { event = JSON.parse(m.data); } catch (e) { return; }
      if (event.type === "hello") { return; }
      onEvent(event);
    };
    ws.onclose = function () {
      setStatus("Reconnecting…", "off");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  function fmt(seconds) {
    seconds = Math.abs(Math.round(seconds));
    if (seconds < 60) { return seconds + "s"; }
    if (seconds < 3600) { return Math.floor(seconds / 60) + "m " + String(seconds % 60).padStart(2, "0") + "s"; }
    if (seconds < 86400) { return Math.floor(seconds / 3600) + "h " + String(Math.floor(seconds % 3600 / 60)).padStart(2, "0") + "m"; }
    return Math.floor(seconds / 86400) + "d " + Math.floor(seconds % 86400 / 3600) + "h";
  }

  function tickSla() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("data-due")) - now) / 1000;
      var label = el.getAttribute("data-label");
      el.textContent = left < 0 ? label + " late " + fmt(left) : label + " " + fmt(left) + " left";
      el.classList.toggle("late", left < 0);
      el.classList.toggle("soon", left >= 0 && left < 300);
      el.classList.toggle("ok", left >= 300);
    });
  }

  function wireAutosubmit(root) {
    root.querySelectorAll("[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { el.form.submit(); });
    });
  }

  function wireComposer() {
    var text = document.getElementById("reply-text");
    var list = document.getElementById("canned-list");
    if (!text) { return; }
    function filter() {
      var v = text.value;
      var m = /^\/([\w-]*)$/.exec(v);
      if (!list || !m) { if (list) { list.hidden = true; } return; }
      var shown = 0;
      list.querySelectorAll("button[data-shortcut]").forEach(function (b) {
        var ok = b.getAttribute("data-shortcut").indexOf(m[1].toLowerCase()) === 0;
        b.parentNode.hidden = !ok;
        if (ok) { shown += 1; }
      });
      list.hidden = shown === 0;
    }
    text.addEventListener("input", filter);
    if (list) {
      list.addEventListener("click", function (e) {
        var b = e.target.closest("button[data-shortcut]");
        if (!b) { return; }
        text.value = "/" + b.getAttribute("data-shortcut") + " ";
        list.hidden = true;
        text.focus();
      });
    }
    text.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        document.getElementById("send-reply").click();
      }
    });
    var box = document.getElementById("messages");
    if (box) { box.scrollTop = box.scrollHeight; }
  }

  wireAutosubmit(document);
  wireComposer();
  tickSla();
  setInterval(tickSla, 1000);
  connect();
})();
