// Stand-in of Shopify's App Bridge for offline tests (bot/sandbox/shopify_admin.py): only what the bot's
// page uses, shopify.idToken(), answered by the stand-in admin with a session token signed for this app.
(function () {
  "use strict";
  const origin = new URL(document.currentScript.src).origin;
  const apiKey = document.querySelector('meta[name="shopify-api-key"]').content;
  const shop = new URLSearchParams(window.location.search).get("shop");
  window.shopify = {
    async idToken() {
      const query = new URLSearchParams({shop: shop, client_id: apiKey});
      const answer = await fetch(origin + "/admin/session-token?" + query);
      return (await answer.json()).token;
    },
  };
})();
