// Card checkout with Stripe.js (served by Stripe, or by localstripe in test mode).
// Real Stripe: stripe.confirmCardPayment(clientSecret, {payment_method: {card}}).
// localstripe: its Stripe.js cannot confirm a fresh PaymentIntent, so the card is tokenised in the
// browser, the server confirms with it, and confirmCardPayment handles 3-D Secure if asked.
(function () {
  "use strict";
  var form = document.getElementById("checkout-form");
  if (!form || typeof Stripe === "undefined") { return; }
  var data = form.dataset;
  var stripe = Stripe(data.publishableKey);
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var errors = document.getElementById("card-errors");
  var button = document.getElementById("pay-button");

  function fail(message) {
    errors.textContent = message || "The payment did not go through.";
    button.disabled = false;
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
    if (!res.ok) { return fail(body.error); }
    if (body.status === "requires_action") {
      var auth = await stripe.confirmCardPayment(data.clientSecret, {payment_method: {card: card}});
      if (auth.error) { return fail(auth.error.message); }
    }
    done();
  }

  async function stripeConfirm() {
    var result = await stripe.confirmCardPayment(data.clientSecret, {payment_method: {card: card}});
    if (result.error) { return fail(result.error.message); }
    done();
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    errors.textContent = "";
    button.disabled = true;
    (data.serverConfirm === "true" ? serverConfirm() : stripeConfirm()).catch(function (e) { fail(e && e.message); });
  });
})();
