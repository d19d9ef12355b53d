// Card checkout with Stripe.js (served by Stripe, or by localstripe in test mode).
// Real Stripe: stripe.confirmCardPayment(clientSecret, {payment_method: {card}}).
// localstripe: its Stripe.js cannot confirm a fresh PaymentIntent, so the card is tokenised in the
// browser, the server confirms with it, and confirmCardPayment handles 3-D Secure if asked.
// Every failure is shown in words next to the card field, never as a script error. A declined
// card stays on this page: the next "Pay" closes that attempt and starts a new one with the same
// amount, and the page comes back with the card field ready.
(function () {
  "use strict";
  var form = document.getElementById("checkout-form");
  if (!form || typeof Stripe === "undefined") { return; }
  var data = form.dataset;
  var stripe = Stripe(data.publishableKey);
  if (data.needsAction === "true") {
    // An automatic installment the bank wants confirmed: authenticate the PaymentIntent as it is
    // (the saved card), no card to type.
    var confirmButton = document.getElementById("pay-button");
    var confirmErrors = document.getElementById("card-errors");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      confirmButton.disabled = true;
      stripe.confirmCardPayment(data.clientSecret).then(function (result) {
        if (result.error) {
          confirmErrors.textContent = result.error.message || "The payment was not confirmed. Nothing was charged.";
          confirmButton.disabled = false;
          return;
        }
        window.location.assign(data.returnUrl);
      }).catch(function () {
        confirmErrors.textContent = "The payment was not confirmed. Nothing was charged; try again.";
        confirmButton.disabled = false;
      });
    });
    return;
  }
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var errors = document.getElementById("card-errors");
  var button = document.getElementById("pay-button");
  var retry = document.getElementById("retry-form");
  var EMPTY = "Enter your card number, expiry date and CVC.";
  var GENERIC = "The payment did not go through. Nothing was charged; check the card details and try again.";
  // Real Stripe reports {empty, complete, error} on change; localstripe's element calls the
  // handler without an event and keeps what was typed in card.value.
  var state = {empty: true, complete: false};

  card.on("change", function (ev) {
    if (ev && typeof ev.empty === "boolean") {
      state.empty = ev.empty;
      state.complete = !!ev.complete;
      errors.textContent = ev.error ? ev.error.message : "";
    } else {
      var typed = card.value && card.value.card;
      state.empty = !typed || !(typed.number || typed.exp_month || typed.cvc);
      state.complete = !state.empty;
      errors.textContent = "";
    }
  });

  function say(message) {
    errors.textContent = message || GENERIC;
    form.classList.add("has-error");
  }

  function fail(message) {
    say(message);
    button.disabled = false;
  }

  function restart(message) {
    // This attempt is over, or soon will be (a declined deposit also lets the seat hold go): the
    // next click asks for a fresh one with the same amount and comes back to this page.
    say(message);
    form.dataset.declined = "true";
    button.textContent = button.dataset.retryLabel || button.textContent;
    button.disabled = false;
  }

  function declined(message) {
    restart((message || "The card was declined.") + " Nothing was charged. Try another card.");
  }

  function done() { window.location.assign(data.returnUrl); }

  async function serverConfirm() {
    var tok = await stripe.createToken(card);
    if (tok.error || !tok.token) { return fail((tok.error && tok.error.message) || "Check the card details."); }
    var res = await fetch(data.cardUrl, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": data.csrf},
      body: JSON.stringify({payment_method: tok.token.card.id})
    });
    var body = await res.json().catch(function () { return {}; });
    if (res.status === 409) { return restart((body.error || "This payment is no longer open.") + " Press the button to start again."); }
    if (!res.ok) { return fail(body.error); }
    if (body.status === "requires_payment_method") { return declined(body.error); }
    if (body.status === "requires_action") {
      var auth = await stripe.confirmCardPayment(data.clientSecret, {payment_method: {card: card}});
      if (auth.error) { return fail(auth.error.message); }
    }
    done();
  }

  async function stripeConfirm() {
    var result = await stripe.confirmCardPayment(data.clientSecret, {payment_method: {card: card}});
    if (result.error && result.error.type === "card_error") { return declined(result.error.message); }
    if (result.error) { return fail(result.error.message); }
    done();
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    errors.textContent = "";
    form.classList.remove("has-error");
    if (form.dataset.declined === "true" && retry) {
      // The return page asks Stripe about this attempt and closes it on our side (without waiting
      // for the webhook); then a new attempt starts. localstripe cannot re-confirm a declined intent.
      button.disabled = true;
      fetch(data.returnUrl, {credentials: "same-origin"}).catch(function () {}).then(function () { retry.submit(); });
      return;
    }
    if (state.empty) { return fail(EMPTY); }
    button.disabled = true;
    (data.serverConfirm === "true" ? serverConfirm() : stripeConfirm()).catch(function (e) {
      if (window.console) { console.warn("checkout:", e); }
      fail(GENERIC);
    });
  });
})();
