"""A WebShop-compatible shop (Yao et al. 2022), embedded and served over HTTP.

    catalogue.py  WebShop's released file schemas -> products, prices, shuffled human goals
    generate.py   a small deterministic catalogue in those schemas (data/webshop/, made on first use)
    reward.py     WebShop's purchase reward (attributes, options, price, r_type)
    pages.py      WebShop's routes and pages: URLs, HTML, and the parser that turns a page into
                  WebShop's text observation and clickables
    shop.py       the web application: search (BM25), sessions, every route -> a page
    browser.py    one session as WebShop's text environment: search[...] / click[...]; in-process or HTTP
    server.py     the shop on 127.0.0.1 (python -m lumos.envs.webshop.server)

Nothing here imports the model or the agent.
"""
