// sd-webui-fooocus: tooltips for the Fooocus accordion, the "starts open" setting, the fallback
// that reads the tab's prompt and seed for "Preview expansion", and the live expansion status.
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
        listenForStarts();
        pollIfBusy();
    }

    // ---- live expansion status ------------------------------------------------------------------
    // The status block (`status_html`) says its kind in data-state. While one says "busy" (the model
    // is being downloaded or loaded), and for a while after Generate / Preview / Retry (which may
    // start a download a moment later), its refresh button is clicked every POLL_MS: one short gradio
    // event that reads the state. Nothing is polled otherwise, nor for a status out of view.
    var POLL_MS = 1000;
    var AFTER_START_MS = 30000;
    var STATUS_SELECTOR = ".fooocus-expansion-status[data-state]";
    var START_SELECTOR = "#txt2img_generate, #img2img_generate, [id$='_fooocus_expansion_preview'], " +
        "[id$='_fooocus_expansion_retry']";
    var watchUntil = 0;
    var pollTimer = null;

    function shown(element) {
        return element.getClientRects().length > 0;
    }

    function refreshButtonFor(status) {
        var block = status.closest("[id$='_expansion_status']");
        if (block === null) {
            return null;
        }
        var holder = app().querySelector("#" + CSS.escape(block.id + "_refresh"));
        if (holder === null) {
            return null;
        }
        return holder.tagName === "BUTTON" ? holder : holder.querySelector("button");
    }

    function pollStatus() {
        pollTimer = null;
        var busy = false;
        var watching = Date.now() < watchUntil;
        app().querySelectorAll(STATUS_SELECTOR).forEach(function (status) {
            var statusBusy = status.getAttribute("data-state") === "busy";
            busy = busy || statusBusy;
            if ((statusBusy || watching) && shown(status)) {
                var button = refreshButtonFor(status);
                if (button !== null) {
                    button.click();
                }
            }
        });
        if (busy || watching) {
            schedulePoll();
        }
    }

    function schedulePoll() {
        if (pollTimer === null) {
            pollTimer = window.setTimeout(pollStatus, POLL_MS);
        }
    }

    function watchStatus() {
        watchUntil = Date.now() + AFTER_START_MS;
        schedulePoll();
    }

    function pollIfBusy() {
        if (app().querySelector(STATUS_SELECTOR + "[data-state='busy']") !== null) {
            schedulePoll();
        }
    }

    var startListening = false;

    function listenForStarts() {
        if (startListening) {
            return;
        }
        startListening = true;
        document.addEventListener("click", function (event) {
            var target = event.target;
            if (target && target.closest && target.closest(START_SELECTOR)) {
                watchStatus();
            }
        }, true);
    }

    window.fooocusStatus = {poll: pollStatus, watch: watchStatus};

    // The schedule plot (see lib_fooocus/webui/schedule_plot.py): a change asks for a drawing by
    // clicking the plot's hidden redraw button; after each drawing, `check` compares the values it
    // was drawn from with the current ones and asks again if they differ (gradio 3.41 drops a click
    // while the previous drawing still runs). A few asks in a row without a change end the loop.
    var PLOT_RETRIES = 3;
    var plotRetries = {};

    function plotNumber(value) {
        if (value === null || value === undefined || (typeof value === "string" && value.trim() === "")) {
            return null;
        }
        var number = Number(value);
        return isFinite(number) ? number : null;
    }

    function plotValue(name, value) {
        if (name === "sampler" || name === "scheduler") {
            return value === null || value === undefined ? null : String(value);
        }
        return plotNumber(value);
    }

    function drawnValues(plotHtml) {
        var holder = document.createElement("template");
        holder.innerHTML = String(plotHtml || "");
        var root = holder.content.querySelector("[data-drawn]");
        try {
            return root ? JSON.parse(root.getAttribute("data-drawn")) : null;
        } catch (e) {
            return null;
        }
    }

    function clickRedraw(redrawId) {
        var button = app().querySelector("#" + CSS.escape(redrawId));
        if (button) {
            button.click();
        }
    }

    window.fooocusPlot = {
        request: function (redrawId) {
            plotRetries[redrawId] = 0;
            clickRedraw(redrawId);
        },
        check: function (redrawId, plotHtml, names, values) {
            var drawn = drawnValues(plotHtml);
            var stale = drawn === null || names.some(function (name, i) {
                return drawn[name] !== plotValue(name, values[i]);
            });
            if (stale && (plotRetries[redrawId] || 0) < PLOT_RETRIES) {
                plotRetries[redrawId] = (plotRetries[redrawId] || 0) + 1;
                clickRedraw(redrawId);
            }
            return stale;
        }
    };

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
