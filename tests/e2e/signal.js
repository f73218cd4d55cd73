// A trader and a strategy, each a PeerJS client of the daemon's signaling server, open a
// DataConnection (WebRTC, loopback host candidates only: no ICE servers) and exchange a trading
// signal and its acknowledgement. The outcome goes to window.result for the test to read, and each
// peer's error, if any, to window.errors. The PeerJS key is the TradSys token in the page's `key`
// (the client's default "peerjs" without one); a peer without an id in the URL asks the server for one.
(function () {
  const params = new URLSearchParams(location.search);
  if (params.get("python")) return;  // the page is python_peer.js's
  const options = {
    host: params.get("host"), port: Number(params.get("port")), path: "/", key: params.get("key") || "peerjs",
    secure: false, debug: 1, config: { iceServers: [] },
  };
  const log = [];
  window.errors = {};
  let finished = false;
  function done(result) {
    if (finished) return;
    finished = true;
    result.log = log;
    window.result = result;
    document.title = result.ok ? "ok" : "failed";
  }
  setTimeout(() => done({ ok: false, error: "timeout" }), Number(params.get("timeout") || 30000));

  const signal = { type: "signal", id: "sig-1", symbol: "BTC-USD", side: "buy", qty: "0.010", price: "60000.00" };
  const opened = (peer, name) => new Promise((resolve) => {
    peer.on("open", (id) => { log.push(`${name} open as ${id}`); resolve(id); });
    peer.on("error", (err) => {
      window.errors[name] = `${err.type}: ${err.message}`;
      done({ ok: false, error: `${name}: ${err.type}: ${err.message}` });
    });
  });
  const makePeer = (name) => (params.get(name) ? new Peer(params.get(name), options) : new Peer(options));
  const strategy = makePeer("strategy");
  const trader = makePeer("trader");

  strategy.on("connection", (conn) => {
    log.push(`strategy: connection from ${conn.peer}`);
    conn.on("data", (data) => {
      log.push(`strategy got ${JSON.stringify(data)}`);
      conn.send({ type: "ack", id: data.id, accepted: true });
    });
  });

  Promise.all([opened(strategy, "strategy"), opened(trader, "trader")]).then(([strategyId]) => {
    const conn = trader.connect(strategyId, { reliable: true });
    conn.on("open", () => { log.push("trader: data connection open"); conn.send(signal); });
    conn.on("data", (ack) => done({ ok: true, sent: signal, ack: ack, from: conn.peer }));
    conn.on("error", (err) => done({ ok: false, error: `connection: ${err}` }));
  });
})();
