// sd-webui-fooocus: tooltips for the Fooocus accordion, the "starts open" setting, and the
// fallback that reads the tab's prompt and seed for "Preview expansion".
(function () {
    "use strict";

    function app() {
        return typeof gradioApp === "function" ? gradioApp() : document;
    }

    function applyTooltips(carrier) {
        var tips;
        try {
            tips = JSON.parse(carrier.getAttribute("data-tooltips") || "{}");
        } catch (e) {
            return;
        }
        var elemIds = Object.keys(tips);
        elemIds.forEach(function (elemId) {
            var element = app().querySelector("#" + CSS.escape(elemId));
            if (!element) {
                return;
            }
            // textContent-free: the text goes only into title attributes.
            tooltipTargets(element, elemIds).forEach(function (target) {
                target.setAttribute("title", tips[elemId]);
                target.querySelectorAll("label, span, input, textarea, button").forEach(function (child) {
                    if (!child.getAttribute("title")) {
                        child.setAttribute("title", tips[elemId]);
                    }
                });
            });
        });
    }

    // The enable switch is the accordion that holds every other control: its help goes on its
    // header only, or each control inside would show it instead of its own.
    function tooltipTargets(element, elemIds) {
        var holdsOthers = elemIds.some(function (otherId) {
            return otherId !== element.id && element.querySelector("#" + CSS.escape(otherId)) !== null;
        });
        if (!holdsOthers) {
            return [element];
        }
        var header = element.querySelector(".label-wrap");
        return header ? [header] : [];
    }

    function openOnLoad(carrier) {
        if (carrier.getAttribute("data-open") !== "1" || carrier.dataset.fooocusOpened) {
            return;
        }
        carrier.dataset.fooocusOpened = "1";
        var accordionId = carrier.getAttribute("data-accordion");
        var accordion = accordionId ? app().querySelector("#" + CSS.escape(accordionId)) : null;
        var label = accordion ? accordion.querySelector(".label-wrap") : null;
        if (label && !label.classList.contains("open")) {
            label.click(); // an InputAccordion that opens is switched on, as the host designs it
        }
    }

    function setup() {
        app().querySelectorAll(".fooocus-tooltips").forEach(function (carrier) {
            if (carrier.dataset.fooocusReady) {
                return;
            }
            carrier.dataset.fooocusReady = "1";
            applyTooltips(carrier);
            openOnLoad(carrier);
        });
    }

    window.fooocusPreviewInputs = function (tab, prompt, seed) {
        var promptBox = app().querySelector("#" + tab + "_prompt textarea");
        var seedBox = app().querySelector("#" + tab + "_seed input");
        return [promptBox ? promptBox.value : prompt, seedBox ? Number(seedBox.value) : seed];
    };

    if (typeof onUiLoaded === "function") {
        onUiLoaded(setup);
    }
    if (typeof onAfterUiUpdate === "function") {
        onAfterUiUpdate(setup);
    } else if (typeof onUiUpdate === "function") {
        onUiUpdate(setup);
    }
})();
