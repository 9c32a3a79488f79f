// Entry of the COCO-style task page.
import { mount } from "./coco/page.js";
import { startTaskPage } from "./task_page.js";

startTaskPage({ mount });
