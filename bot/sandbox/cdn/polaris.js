// Stand-in of Shopify's Polaris web components for offline tests: the tags the bot's page uses, drawn
// plainly in the light DOM (headings from their `heading` attribute; buttons focusable and clickable).
(function () {
  "use strict";
  function headed(tag, level) {
    return class extends HTMLElement {
      connectedCallback() {
        if (this.dataset.drawn || !this.getAttribute("heading")) return;
        this.dataset.drawn = "1";
        const heading = document.createElement(level);
        heading.textContent = this.getAttribute("heading");
        this.prepend(heading);
        this.style.display = "block";
        this.style.margin = tag === "s-section" ? "1rem 0" : "0";
        if (tag === "s-section") { this.style.padding = "1rem"; this.style.border = "1px solid #e3e3e3"; this.style.borderRadius = "8px"; }
      }
    };
  }
  customElements.define("s-page", headed("s-page", "h1"));
  customElements.define("s-section", headed("s-section", "h2"));
  customElements.define("s-banner", headed("s-banner", "strong"));
  customElements.define("s-stack", class extends HTMLElement {
    connectedCallback() { this.style.display = "flex"; this.style.gap = ".5rem"; }
  });
  customElements.define("s-button", class extends HTMLElement {
    connectedCallback() {
      this.setAttribute("role", "button");
      this.tabIndex = 0;
      this.style.cssText = "display:inline-block;padding:.4rem .9rem;border-radius:6px;cursor:pointer;" +
        (this.getAttribute("variant") === "primary" ? "background:#303030;color:#fff" : "border:1px solid #8a8a8a");
    }
  });
})();
