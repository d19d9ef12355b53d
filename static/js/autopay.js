// Saving a card for automatic installments: stripe.confirmCardSetup(clientSecret, {payment_method:
// {card}}) with Stripe.js (real Stripe's, or localstripe's, which supports the same call). The
// server then asks Stripe whether the SetupIntent succeeded (the return URL). Every failure is
// shown in words next to the card field; the button is disabled while a request is under way, so
// a double click saves one card.
(function () {
  "use strict";
  var form = document.getElementById("autopay-form");
  if (!form || typeof Stripe === "undefined") { return; }
  var data = form.dataset;
  var stripe = Stripe(data.publishableKey);
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var errors = document.getElementById("card-errors");
  var button = document.getElementById("save-card-button");
  var state = {empty: true};

  card.on("change", function (ev) {
    if (ev && typeof ev.empty === "boolean") {
      state.empty = ev.empty;
      errors.textContent = ev.error ? ev.error.message : "";
    } else {
      var typed = card.value && card.value.card;
      state.empty = !typed || !(typed.number || typed.exp_month || typed.cvc);
      errors.textContent = "";
    }
  });

  function fail(message) {
    errors.textContent = message || "The card could not be saved. Nothing was charged; check the details and try again.";
    form.classList.add("has-error");
    button.disabled = false;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (button.disabled) { return; }
    errors.textContent = "";
    form.classList.remove("has-error");
    if (state.empty) { return fail("Enter your card number, expiry date and CVC."); }
    button.disabled = true;
    stripe.confirmCardSetup(data.clientSecret, {payment_method: {card: card}}).then(function (result) {
      if (result.error) { return fail(result.error.message); }
      window.location.assign(data.returnUrl);
    }).catch(function (e) {
      if (window.console) { console.warn("autopay:", e); }
      fail();
    });
  });
})();
